import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './process';
import { eventually } from './instance';

const NGINX = process.env.NGINX_PATH ?? '/usr/sbin/nginx';

/**
 * Debian's nginx on a loopback port of its own, running deploy/nginx.conf as shipped except for what must
 * differ on a test machine: the upstream servers (our instances), the listen port, one worker, and files in
 * a temporary prefix. Stopped (and its files removed) by `close`.
 */
export async function startNginx(upstreams: string[], opts: { pollRate?: string } = {}) {
  if (!fs.existsSync(NGINX))
    throw new Error(
      `These tests need nginx at ${NGINX}: apt-get install -y nginx (.ci/run does), or set NGINX_PATH.`,
    );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-nginx-'));
  fs.chmodSync(dir, 0o755); // nginx's workers (nobody, when started as root) keep the poll cache in here
  const port = await freePort();
  let conf = fs.readFileSync(path.join(__dirname, '..', '..', 'deploy', 'nginx.conf'), 'utf8');
  conf = conf
    .replace(/^worker_processes .*$/m, `worker_processes 1;\npid ${dir}/nginx.pid;`)
    .replace(/^\s*server app\d:3000[^\n]*\n/gm, '')
    .replace(
      /upstream scoreboard \{/,
      `upstream scoreboard {\n${upstreams.map((u) => `    server ${u};`).join('\n')}`,
    )
    .replace(/listen 80;/, `listen 127.0.0.1:${port};`)
    .replace(/access_log \/dev\/stdout;/, `access_log ${dir}/access.log;`)
    .replace(/error_log \/dev\/stderr warn;/, `error_log ${dir}/error.log warn;`)
    .replace(/proxy_cache_path \/var\/cache\/nginx\/scoreboard/, `proxy_cache_path ${dir}/cache`)
    .replace(/rate=10r\/s/, `rate=${opts.pollRate ?? '10r/s'}`)
    .replace(/limit_req zone=scoreboard_polls burst=\d+/, (m) =>
      opts.pollRate ? 'limit_req zone=scoreboard_polls burst=100000' : m,
    )
    .replace(/^http \{/m, `http {\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;`);
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child = spawn(
    NGINX,
    ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', `${dir}/error.log`, '-g', 'daemon off;'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
      try {
        await fetch(`${url}/healthz`);
        return true;
      } catch {
        return false;
      }
    },
    10_000,
    50,
  );
  return {
    url,
    port,
    async close() {
      child.kill('SIGQUIT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
