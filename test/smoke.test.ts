import { expect } from 'chai';
import { startInstance, type Instance } from './helpers/instance';
import { tokenFor, uniqueUser } from './helpers/env';

describe('smoke', () => {
  let app: Instance;
  before(async () => (app = await startInstance()));
  after(() => app.close());

  it('applies a delta', async () => {
    const u = uniqueUser();
    const res = await app.request
      .post('/api/v1/scores/update')
      .set('Authorization', `Bearer ${tokenFor(u)}`)
      .send({ scoreIncrement: 3 });
    expect(res.status).to.equal(201);
    expect(res.body).to.include({ userId: u, score: 3, scoreIncrement: 3 });
  });
});
