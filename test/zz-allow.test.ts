import { startInstance } from './helpers/instance';
it('x', async () => { const a = await startInstance(); const r = await a.request.get('/api/v1/scores/update'); console.log(r.status, r.headers.allow, r.text); const r2 = await a.request.delete('/api/scores/update'); console.log(r2.headers.allow); await a.close(); });
