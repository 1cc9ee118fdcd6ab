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
 * Puts a user at the top of the board: a first point as the player, then an admin's bonus that lifts them
 * above whoever leads now (read from /top), and above every earlier call (it grows with the clock, for calls
 * closer together than a snapshot tick), so the newest user leads whatever earlier tests left behind.
 */
export async function addToTop(app: Instance, userId: string, name?: string) {
  const first = await addPoints(app, userId, 1, name);
  // Read in process rather than with a GET, so tests that count requests see only their own.
  const top = JSON.parse(app.services.boards.global().snapshot.current().body.toString()) as Array<{
    score: number;
  }>;
  const lead = Math.max(0, ...top.map((e) => e.score));
  const res = await app.request
    .post('/api/v1/scores/update')
    .set('Authorization', `Bearer ${adminToken()}`)
    .send({
      userId,
      scoreIncrement: Math.max(lead - first.score + 1000, 1e12 + Date.now() * 10 + (bonus++ % 10)),
    });
  expect(res.status, JSON.stringify(res.body)).to.equal(201);
  return res.body as { score: number };
}
