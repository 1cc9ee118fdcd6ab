import type { Db } from './db';

export interface Statement {
  sql: string;
  values: unknown[];
}

/**
 * One transaction on a pooled connection, driven by hand instead of through knex's transaction helper: the
 * opening START TRANSACTION rides along with the first statements and the COMMIT with the last ones, so a
 * batch costs two round trips to MySQL instead of six. That matters on a small machine, where every round
 * trip waits for the MySQL thread to be scheduled. A caller is answered only once `commit` has returned, so
 * only after its COMMIT succeeded; any failure rolls back (or drops the connection if it cannot).
 */
export interface Tx {
  /** Sends statements in one round trip, opening the transaction first if it is not open yet. */
  run(statements: Statement[]): Promise<unknown[]>;
  /** Sends the statements and COMMIT in one round trip. */
  commit(statements: Statement[]): Promise<unknown[]>;
}

interface RawConnection {
  query(sql: string, values: unknown[], cb: (err: Error | null, results: unknown) => void): void;
  destroy(): void;
}

export async function inTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const conn = (await db.client.acquireConnection()) as RawConnection;
  let open = false;
  let done = false;
  const send = (statements: Statement[]) =>
    new Promise<unknown[]>((resolve, reject) => {
      const sql = statements.map((s) => s.sql).join(';\n');
      const values = statements.flatMap((s) => s.values);
      // mysql2 answers one result for one statement and an array of them for several.
      conn.query(sql, values, (err, results) =>
        err ? reject(err) : resolve(statements.length === 1 ? [results] : (results as unknown[])),
      );
    });
  const tx: Tx = {
    async run(statements) {
      if (open) return send(statements);
      open = true;
      return (await send([{ sql: 'START TRANSACTION', values: [] }, ...statements])).slice(1);
    },
    async commit(statements) {
      const all = [...(open ? [] : [{ sql: 'START TRANSACTION', values: [] }]), ...statements];
      const results = await send([...all, { sql: 'COMMIT', values: [] }]);
      done = true;
      return results.slice(all.length - statements.length, -1);
    },
  };
  try {
    const result = await fn(tx);
    if (!done) throw new Error('the transaction function returned without committing');
    return result;
  } catch (err) {
    if (open && !done) {
      await send([{ sql: 'ROLLBACK', values: [] }]).catch(() => conn.destroy()); // the pool drops it
    }
    throw err;
  } finally {
    await db.client.releaseConnection(conn);
  }
}
