import { expect } from 'chai';
import { tokenFor } from './env';
import type { Instance } from './instance';

export const TEST_ADMIN = 'test-admin';
/** TEST_ADMIN is an admin in the database (test/setup.ts and isolatedStore make it so), not by its token. */
export const adminToken = () => tokenFor(TEST_ADMIN, { name: 'Test Admin' });

/** A player adds points to their own score through the API. */
export async function addPoints(app: Instance, userId: string, scoreIncrement: number, name?: string) {
  const res = await app.request
    .post('/api/v1/scores/update')
    .set('Authorization', `Bearer ${tokenFor(userId, { name })}`)
    .send({ scoreIncrement });
  expect(res.status, JSON.stringify(res.body)).to.equal(201);
  return res.body;
}

let bonus = 0;
/**
 * Puts a user at the top of the board: a first point as the player, then an admin's bonus that grows with
 * every call, so the newest user leads whatever earlier tests left in the tables.
 */
export async function addToTop(app: Instance, userId: string, name?: string) {
  await addPoints(app, userId, 1, name);
  const res = await app.request
    .post('/api/v1/scores/update')
    .set('Authorization', `Bearer ${adminToken()}`)
    .send({ userId, scoreIncrement: 1_000_000_000_000 + Date.now() * 10 + (bonus++ % 10) });
  expect(res.status, JSON.stringify(res.body)).to.equal(201);
  return res.body as { score: number };
}
