import { deleteRunKeys, dropTestDatabase, prepareTestDatabase } from './helpers/database';
import { startCluster } from './helpers/redis-servers';
import { TEST_REDIS_MODE, useCluster } from './helpers/test-redis';

let cluster: Awaited<ReturnType<typeof startCluster>> | undefined;

/** Root hooks: create and migrate the test database once; remove this run's Redis keys at the end. */
export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(60_000);
    await prepareTestDatabase();
    if (TEST_REDIS_MODE === 'cluster') {
      cluster = await startCluster();
      useCluster(cluster.nodes);
    }
  },
  async afterAll() {
    await deleteRunKeys();
    await cluster?.close();
    await dropTestDatabase();
  },
};
