import { deleteRunKeys, dropTestDatabase, prepareTestDatabase } from './helpers/database';

/** Root hooks: create and migrate the test database once; remove this run's Redis keys at the end. */
export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(60_000);
    await prepareTestDatabase();
  },
  async afterAll() {
    await deleteRunKeys();
    await dropTestDatabase();
  },
};
