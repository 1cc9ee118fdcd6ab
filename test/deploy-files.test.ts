import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse, parseAllDocuments } from 'yaml';
import { configKeys, loadConfig } from '../src/config';

/**
 * No container engine runs in CI, so the deployment files are checked for what can be checked without one:
 * they parse, they give the service only variables its configuration schema knows (and valid values), the
 * image runs as a non-root user with a health check, and Kubernetes waits longer than the service's own
 * shutdown timeout and probes the right endpoints.
 */
const root = path.resolve(__dirname, '..');
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');
const KNOWN = new Set(configKeys());
const DUMMY_SECRET = 'x'.repeat(48);

type Env = Record<string, string>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

/** Compose's interpolation, enough to validate values: defaults taken, required values given a dummy. */
function interpolate(value: string): string {
  return value
    .replace(/\$\{(\w+)(?::?-([^}]*))?\}/g, (_m, _name: string, dflt?: string) => dflt ?? '')
    .replace(/\$\{(\w+):?\?[^}]*\}/g, (_m, name: string) =>
      ['JWT_SECRET', 'METRICS_TOKEN'].includes(name) ? DUMMY_SECRET : 'dummy',
    )
    .replace(/\$\$/g, '$');
}

function composeEnv(service: Doc): Env {
  const env = service.environment ?? {};
  const entries: Array<[string, unknown]> = Array.isArray(env)
    ? env.map((e: string) => {
        const i = e.indexOf('=');
        return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)];
      })
    : Object.entries(env);
  return Object.fromEntries(entries.map(([k, v]) => [k, interpolate(String(v ?? ''))]));
}

/** A compose duration such as "20s", "1m30s" or "500ms", in milliseconds. */
function durationMs(value: string): number {
  let ms = 0;
  for (const [, n, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    ms += Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'];
  }
  return ms;
}

/** The source file a `node dist/...js` command runs, which must exist. */
function sourceOf(distPath: string): string {
  return path.join(root, distPath.replace(/^dist\//, '').replace(/\.js$/, '.ts'));
}

/** The Secret's placeholders are deliberately invalid; real values stand in for them. */
const withRealSecrets = (env: Env): Env => ({
  ...env,
  JWT_SECRET: DUMMY_SECRET,
  METRICS_TOKEN: DUMMY_SECRET,
});

function expectKnownKeys(keys: string[], where: string): void {
  const unknown = keys.filter((k) => !KNOWN.has(k));
  expect(unknown, `${where} sets variables the config schema does not know`).to.deep.equal([]);
  expect(keys, `${where} must not hold the signing key`).not.to.include('JWT_PRIVATE_KEY');
}

describe('deployment files', () => {
  it('configKeys() lists the schema, including the JWT settings', () => {
    expect(configKeys()).to.include.members([
      'DATABASE_URL',
      'REDIS_URL',
      'JWT_SECRET',
      'SHUTDOWN_TIMEOUT_MS',
    ]);
    expect(configKeys()).not.to.include('JWT_PRIVATE_KEY');
  });

  it('no deployment file mentions JWT_PRIVATE_KEY (the service never holds a signing key)', () => {
    const files = ['Dockerfile', 'docker-compose.yml', 'deploy/nginx.conf', ...k8sFiles()];
    for (const file of files) expect(read(file), file).not.to.include('JWT_PRIVATE_KEY');
  });

  describe('Dockerfile', () => {
    const lines = read('Dockerfile')
      .replace(/\\\n/g, ' ')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const stages = lines.reduce<string[][]>((acc, l) => {
      if (/^FROM\s/i.test(l)) acc.push([]);
      acc[acc.length - 1]?.push(l);
      return acc;
    }, []);
    const runtime = stages[stages.length - 1];
    const instr = (name: string) => runtime.filter((l) => l.toUpperCase().startsWith(`${name} `));

    it('is multi-stage, with a slim Node 24 LTS runtime (an exact release) holding production dependencies only', () => {
      expect(stages.length).to.be.greaterThan(1);
      // node:24.x.y-bookworm-slim, optionally @sha256:<digest>; the build stage uses the very same image.
      const image = /^FROM (node:24\.\d+\.\d+-bookworm-slim(?:@sha256:[0-9a-f]{64})?) AS runtime$/i.exec(
        runtime[0],
      );
      expect(image, runtime[0]).to.not.equal(null);
      expect(stages[0][0]).to.equal(`FROM ${image![1]} AS build`);
      expect(
        runtime.some((l) => /npm ci\b.*--omit=dev/.test(l)),
        'npm ci --omit=dev',
      ).to.equal(true);
      expect(stages[0].some((l) => /npm run build/.test(l))).to.equal(true);
    });

    it('runs as a non-root user', () => {
      const users = instr('USER');
      expect(users, 'USER in the final stage').to.have.length.greaterThan(0);
      const user = users[users.length - 1].split(/\s+/)[1].split(':')[0];
      expect(['root', '0']).not.to.include(user);
      const cmdIndex = runtime.findIndex((l) => /^CMD\s/i.test(l));
      expect(runtime.indexOf(users[users.length - 1])).to.be.lessThan(cmdIndex);
    });

    it('has a HEALTHCHECK against /healthz that needs no curl', () => {
      const [check] = instr('HEALTHCHECK');
      expect(check, 'HEALTHCHECK').to.be.a('string');
      expect(check).to.include('/healthz');
      expect(check).to.match(/CMD \[\s*"node"/);
    });

    it('exposes the port and starts the built server, whose source exists', () => {
      expect(instr('EXPOSE').join(' ')).to.match(/\b3000\b/);
      const [cmd] = instr('CMD');
      expect(JSON.parse(cmd.slice(4))).to.deep.equal(['node', 'dist/src/main.js']);
      expect(fs.existsSync(sourceOf('dist/src/main.js'))).to.equal(true);
      expect(fs.existsSync(sourceOf('dist/src/cli/db.js'))).to.equal(true);
    });

    it('copies into the runtime stage only things the build stage has', () => {
      const copies = instr('COPY').filter((l) => l.includes('--from=build'));
      expect(copies.length).to.be.greaterThan(0);
      for (const copy of copies) {
        const [from] = copy.replace(/^COPY\s+--from=build\s+/i, '').split(/\s+/);
        const inRepo = from.replace(/^\/app\//, '');
        const source = inRepo.startsWith('dist/')
          ? path.join(root, inRepo.replace(/^dist\//, '')).replace(/\.js$/, '.ts')
          : path.join(root, inRepo);
        expect(fs.existsSync(source), `${copy}: ${path.relative(root, source)} exists`).to.equal(true);
      }
    });

    it('.dockerignore keeps node_modules, dist and git out of the build context', () => {
      const ignored = read('.dockerignore').split('\n');
      expect(ignored).to.include.members(['node_modules', 'dist', '.git']);
    });
  });

  describe('docker-compose.yml', () => {
    const compose: Doc = parse(read('docker-compose.yml'), { merge: true });
    const services: Record<string, Doc> = compose.services;
    const ours = Object.entries(services).filter(([, s]) => s.build || /scoreboard/.test(s.image ?? ''));

    it('has MySQL 8 with a health check, Redis 7, migrate, app1, app2 and nginx', () => {
      expect(services).to.include.keys('mysql', 'redis', 'migrate', 'app1', 'app2', 'nginx');
      expect(services.mysql.image).to.match(/^mysql:8/);
      expect(services.mysql.healthcheck?.test).to.be.an('array');
      expect(services.redis.image).to.match(/^redis:7/);
      expect(ours.map(([name]) => name)).to.have.members(['migrate', 'app1', 'app2']);
    });

    it('gives the service only variables the config schema knows', () => {
      for (const [name, service] of ours) {
        expect(service.env_file, `${name}: env_file cannot be checked`).to.equal(undefined);
        expectKnownKeys(Object.keys(composeEnv(service)), `compose service ${name}`);
      }
    });

    it('gives the app instances a configuration the schema accepts', () => {
      for (const name of ['app1', 'app2']) {
        const config = loadConfig(composeEnv(services[name]));
        expect(config.nodeEnv).to.equal('production');
        expect(config.port).to.equal(3000);
      }
    });

    it('runs migrations once before the instances start, from the same image', () => {
      const migrate = services.migrate;
      expect(migrate.command.slice(0, 2)).to.deep.equal(['node', 'dist/src/cli/db.js']);
      expect(['migrate', 'setup']).to.include(migrate.command[2]);
      expect(fs.existsSync(sourceOf(migrate.command[1]))).to.equal(true);
      for (const name of ['app1', 'app2']) {
        expect(services[name].image).to.equal(migrate.image);
        expect(services[name].depends_on.migrate.condition).to.equal('service_completed_successfully');
      }
    });

    it('protects /metrics of the app instances with METRICS_TOKEN, which must be given', () => {
      for (const name of ['app1', 'app2']) {
        expect(String(services[name].environment.METRICS_TOKEN)).to.match(/^\$\{METRICS_TOKEN:\?/);
        expect(loadConfig(composeEnv(services[name])).metricsToken).to.be.a('string');
      }
    });

    it('lets an instance stop for longer than its own shutdown timeout', () => {
      for (const name of ['app1', 'app2']) {
        const { shutdownTimeoutMs } = loadConfig(composeEnv(services[name]));
        expect(durationMs(services[name].stop_grace_period ?? '10s')).to.be.greaterThan(shutdownTimeoutMs);
      }
    });

    it('Prometheus mounts deploy/prometheus, scrapes every instance and gets the metrics token file', () => {
      const prometheus = services.prometheus;
      expect(prometheus.image).to.match(/^prom\/prometheus:v\d/);
      const config: Doc = parse(read('deploy/prometheus/prometheus.yml'));
      // The config and every rule file it loads are mounted where it expects them (paths relative to it).
      for (const file of ['prometheus.yml', ...config.rule_files]) {
        expect(prometheus.volumes).to.include(`./deploy/prometheus/${file}:/etc/prometheus/${file}:ro`);
      }
      expect(prometheus.command).to.include('--config.file=/etc/prometheus/prometheus.yml');
      const job = config.scrape_configs.find((j: Doc) => j.job_name === 'scoreboard');
      const port = loadConfig(composeEnv(services.app1)).port;
      expect(job.static_configs[0].targets).to.have.members(['app1', 'app2'].map((n) => `${n}:${port}`));
      // credentials_file is relative to the config file: the token must be mounted exactly there.
      const token = prometheus.configs.find((c: Doc) => c.source === 'metrics-token');
      expect(token.target).to.equal(path.posix.join('/etc/prometheus', job.authorization.credentials_file));
      expect(compose.configs['metrics-token'].content).to.match(/METRICS_TOKEN/);
    });

    it('Grafana is provisioned from deploy/grafana, readable without a login click-through', () => {
      const grafana = services.grafana;
      expect(grafana.image).to.match(/^grafana\/grafana(-oss)?:\d/);
      const provider = parse(read('deploy/grafana/provisioning/dashboards/scoreboard.yml')).providers[0];
      expect(grafana.volumes).to.include.members([
        './deploy/grafana/provisioning:/etc/grafana/provisioning:ro',
        `./deploy/grafana/dashboards:${provider.options.path}:ro`,
      ]);
      const env = composeEnv(grafana);
      expect(env.GF_AUTH_ANONYMOUS_ENABLED).to.equal('true');
      expect(env.GF_AUTH_ANONYMOUS_ORG_ROLE).to.equal('Viewer');
      expect(grafana.environment.GF_SECURITY_ADMIN_PASSWORD).to.match(/^\$\{GRAFANA_ADMIN_PASSWORD/);
      const [source] = parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')).datasources;
      expect(source.url).to.equal(`http://prometheus:9090`);
      expect(services.prometheus.ports).to.include('9090:9090');
    });

    it('RabbitMQ (management) runs beside the instances, which consume deltas and publish events through it', () => {
      expect(services.rabbitmq.image).to.match(/^rabbitmq:[\d.]+-management/);
      expect(services.rabbitmq.healthcheck?.test).to.be.an('array');
      for (const name of ['app1', 'app2']) {
        const env = composeEnv(services[name]);
        expect(env.AMQP_URL, name).to.match(/^amqp:\/\/[^:]+:[^@]+@rabbitmq:5672$/); // the broker user compose creates, not guest
        expect(env.AMQP_EVENTS_EXCHANGE, name).to.equal('scoreboard.events');
        expect(services[name].depends_on.rabbitmq.condition, name).to.equal('service_healthy');
      }
      expect(loadConfig(composeEnv(services.app1)).amqp.eventsExchange).to.equal('scoreboard.events');
    });

    it('puts nginx in front of both instances, configured for Server-Sent Events', () => {
      const mount = (services.nginx.volumes as string[]).find((v) => v.includes('nginx.conf'));
      expect(mount).to.match(/^\.\/deploy\/nginx\.conf:/);
      const conf = read('deploy/nginx.conf');
      expect(conf)
        .to.match(/server app1:3000/)
        .and.to.match(/server app2:3000/);
      const sse = /location ~ (\S+) \{([^}]*)\}/.exec(conf);
      expect(sse, 'a regex location for the streams').to.not.equal(null);
      const pattern = new RegExp(sse![1]);
      expect(pattern.test('/api/v1/scores/stream') && pattern.test('/api/scores/stream')).to.equal(true);
      for (const directive of [
        'proxy_buffering off;',
        'proxy_cache off;',
        'proxy_http_version 1.1;',
        "proxy_set_header Connection '';",
        'chunked_transfer_encoding on;',
        'proxy_set_header X-Forwarded-For',
        'proxy_set_header X-Request-Id',
      ]) {
        expect(sse![2], directive).to.include(directive);
      }
      expect(sse![2]).to.match(/proxy_read_timeout (\d+h|\d{3,}s?);/);
    });
  });

  describe('deploy/logging', () => {
    // The README's log-field table is the contract; the shippers may only rely on fields it lists.
    const readme = read('README.md');
    const table = readme.slice(readme.indexOf('### Log fields'), readme.indexOf('Shipping them:'));
    const documented = new Set(
      table
        .split('\n')
        .filter((l) => l.startsWith('| `'))
        .flatMap((l) => [...l.split('|')[1].matchAll(/`(\w+)`/g)].map((m) => m[1])),
    );

    it('the README documents the fields the request logger writes', () => {
      expect([...documented]).to.include.members(['time', 'level', 'msg', 'requestId', 'method', 'route']);
      expect([...documented]).to.include.members(['status', 'ms', 'userId', 'signal', 'err', 'service']);
    });

    it('Filebeat and Promtail parse and read only documented fields', () => {
      const filebeat = read('deploy/logging/filebeat.yml');
      const promtail: Doc = parse(read('deploy/logging/promtail.yml'));
      expect(parse(filebeat)['filebeat.inputs'][0].parsers[1].ndjson.target).to.equal('scoreboard');
      const fromFilebeat = [...filebeat.matchAll(/scoreboard\.(\w+)/g)].map((m) => m[1]);
      const stages = promtail.scrape_configs[0].pipeline_stages;
      const fromPromtail = Object.values(stages.find((st: Doc) => st.json).json.expressions) as string[];
      expect(fromFilebeat.length).to.be.greaterThan(5);
      for (const field of [...fromFilebeat, ...fromPromtail])
        expect([...documented], field).to.include(field);
    });
  });

  describe('deploy/k8s', () => {
    const docs: Doc[] = k8sFiles().flatMap((file) =>
      parseAllDocuments(read(file)).map((d) => {
        expect(d.errors, file).to.deep.equal([]);
        return d.toJS();
      }),
    );
    const byKind = (kind: string): Doc[] => docs.filter((d) => d?.kind === kind);
    const configMaps = new Map<string, Env>(byKind('ConfigMap').map((d) => [d.metadata.name, d.data ?? {}]));
    const secrets = new Map<string, Env>(
      byKind('Secret').map((d) => [
        d.metadata.name,
        {
          ...d.stringData,
          ...Object.fromEntries(
            Object.entries(d.data ?? {}).map(([k, v]) => [k, Buffer.from(String(v), 'base64').toString()]),
          ),
        },
      ]),
    );
    const workloads = docs.filter((d) => d?.spec?.template?.spec?.containers);
    const [deployment] = byKind('Deployment');
    const container = deployment?.spec.template.spec.containers[0];

    /** The environment a container gets: envFrom sources, then env entries. */
    function containerEnv(c: Doc): Env {
      const env: Env = {};
      for (const from of c.envFrom ?? []) {
        const source = from.configMapRef
          ? configMaps.get(from.configMapRef.name)
          : secrets.get(from.secretRef?.name);
        expect(source, `envFrom ${JSON.stringify(from)} names a ConfigMap or Secret in deploy/k8s`).to.be.an(
          'object',
        );
        Object.assign(env, source);
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
        if (ref) {
          const source = e.valueFrom.secretKeyRef ? secrets.get(ref.name) : configMaps.get(ref.name);
          expect(source?.[ref.key], `${e.name} from ${ref.name}/${ref.key}`).to.be.a('string');
          env[e.name] = source![ref.key];
        } else {
          env[e.name] = String(e.value ?? '');
        }
      }
      return env;
    }

    it('has every kind of manifest', () => {
      const kinds = docs.map((d) => d.kind);
      expect(kinds).to.include.members([
        'Deployment',
        'Service',
        'HorizontalPodAutoscaler',
        'PodDisruptionBudget',
        'Job',
        'ConfigMap',
        'Secret',
      ]);
    });

    it('ConfigMaps and Secrets hold only variables the config schema knows', () => {
      for (const [name, data] of [...configMaps, ...secrets]) expectKnownKeys(Object.keys(data), name);
    });

    it('every container gets only variables the config schema knows', () => {
      expect(workloads.length).to.be.greaterThan(1);
      for (const w of workloads) {
        for (const c of w.spec.template.spec.containers) {
          expectKnownKeys(Object.keys(containerEnv(c)), `${w.kind} ${w.metadata.name}/${c.name}`);
          expectKnownKeys(
            (c.env ?? []).map((e: Doc) => e.name),
            `${w.kind} ${w.metadata.name}/${c.name} env`,
          );
        }
      }
    });

    it("the Deployment's settings pass the schema (with a real secret in place of the placeholder)", () => {
      const config = loadConfig(withRealSecrets(containerEnv(container)));
      expect(config.nodeEnv).to.equal('production');
      const port = container.ports.find((p: Doc) => p.name === 'http');
      expect(port.containerPort).to.equal(config.port);
    });

    it('gives the pods METRICS_TOKEN from the Secret, never from the ConfigMap', () => {
      expect(containerEnv(container).METRICS_TOKEN).to.be.a('string');
      for (const [name, data] of configMaps) expect(data, name).not.to.have.property('METRICS_TOKEN');
      expect([...secrets.values()].some((d) => 'METRICS_TOKEN' in d)).to.equal(true);
    });

    it('probes /readyz for readiness and /healthz for liveness', () => {
      expect(container.readinessProbe.httpGet.path).to.equal('/readyz');
      expect(container.livenessProbe.httpGet.path).to.equal('/healthz');
      for (const probe of [container.readinessProbe, container.livenessProbe]) {
        const port = probe.httpGet.port;
        expect(
          container.ports.some((p: Doc) => p.name === port || p.containerPort === port),
          `probe port ${port}`,
        ).to.equal(true);
      }
    });

    it('waits longer than the preStop pause plus SHUTDOWN_TIMEOUT_MS before killing a pod', () => {
      const { shutdownTimeoutMs } = loadConfig(withRealSecrets(containerEnv(container)));
      const preStop: string[] = container.lifecycle?.preStop?.exec?.command ?? [];
      const pauseS =
        preStop[0] === 'sleep' ? Number(preStop[1]) : (container.lifecycle?.preStop?.sleep?.seconds ?? 0);
      const graceS = deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30;
      expect(graceS * 1000).to.be.greaterThan(pauseS * 1000 + shutdownTimeoutMs);
    });

    it('runs every pod as non-root, with resources set', () => {
      for (const w of workloads) {
        const pod = w.spec.template.spec;
        expect(pod.securityContext?.runAsNonRoot, `${w.kind} runAsNonRoot`).to.equal(true);
        expect(pod.securityContext?.runAsUser, `${w.kind} runAsUser`).to.be.greaterThan(0);
        for (const c of pod.containers) {
          expect(c.securityContext?.allowPrivilegeEscalation, `${c.name} allowPrivilegeEscalation`).to.equal(
            false,
          );
          expect(c.resources?.requests, `${c.name} resource requests`).to.include.keys('cpu', 'memory');
          expect(c.resources?.limits, `${c.name} resource limits`).to.include.keys('memory');
        }
      }
    });

    it("the migration Job runs the image's migrate command, whose source exists", () => {
      const [job] = byKind('Job');
      const [c] = job.spec.template.spec.containers;
      expect(c.command).to.deep.equal(['node', 'dist/src/cli/db.js', 'migrate']);
      expect(c.image).to.equal(container.image);
      expect(fs.existsSync(sourceOf(c.command[1]))).to.equal(true);
      expect(job.spec.template.metadata.labels).not.to.deep.include(deployment.spec.selector.matchLabels);
    });

    it('the Service, HPA and PDB point at the Deployment and its pods', () => {
      const labels = deployment.spec.template.metadata.labels;
      const [service] = byKind('Service');
      const [hpa] = byKind('HorizontalPodAutoscaler');
      const [pdb] = byKind('PodDisruptionBudget');
      expect(labels).to.deep.include(service.spec.selector);
      expect(labels).to.deep.include(pdb.spec.selector.matchLabels);
      expect(hpa.spec.scaleTargetRef).to.include({ kind: 'Deployment', name: deployment.metadata.name });
      expect(hpa.spec.minReplicas).to.be.greaterThan(1);
      expect(deployment.spec.replicas, 'the HPA owns the replica count').to.equal(undefined);
      const targetPort = service.spec.ports[0].targetPort;
      expect(
        container.ports.some((p: Doc) => p.name === targetPort || p.containerPort === targetPort),
      ).to.equal(true);
    });
  });

  describe('deploy/nginx.conf', () => {
    const conf = read('deploy/nginx.conf');
    /** The body of `location <match> {...}` (no nested blocks in ours). */
    const location = (match: string) =>
      new RegExp(`location ${match.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\{([^}]*)\\}`).exec(conf)?.[1];

    const zones = (directive: string) =>
      new Set(
        [...conf.matchAll(new RegExp(`${directive}\\s+\\$binary_remote_addr\\s+zone=(\\w+):`, 'g'))].map(
          (m) => m[1],
        ),
      );
    /** The body of the regex location that matches both spellings of `path` (versioned and not). */
    function regexLocation(path: string): string | undefined {
      for (const [, pattern, body] of conf.matchAll(/location ~ (\S+) \{([^}]*)\}/g)) {
        const re = new RegExp(pattern);
        if (re.test(`/api/v1${path}`) && re.test(`/api${path}`)) return body;
      }
      return undefined;
    }

    it('limits open streams per client address (limit_conn), at most RATE_LIMIT_STREAMS_PER_IP', () => {
      const body = regexLocation('/scores/stream');
      expect(body, 'the stream location').to.be.a('string');
      const m = /limit_conn\s+(\w+)\s+(\d+);/.exec(body!);
      expect(m, 'limit_conn in the stream location').to.not.equal(null);
      expect(zones('limit_conn_zone').has(m![1]), `zone ${m![1]} is declared per address`).to.equal(true);
      const { streams } = loadConfig({ JWT_SECRET: DUMMY_SECRET, NODE_ENV: 'development' });
      expect(Number(m![2])).to.be.within(1, streams.perClient);
      expect(conf).to.match(/limit_conn_status 429;/);
    });

    it('limits polls per client address (limit_req) before they reach an instance', () => {
      const body = regexLocation('/scores/top');
      expect(body, 'a poll location').to.be.a('string');
      const m = /limit_req\s+zone=(\w+)/.exec(body!);
      expect(m, 'limit_req in the poll location').to.not.equal(null);
      expect(zones('limit_req_zone').has(m![1]), `zone ${m![1]} is declared per address`).to.equal(true);
      expect(body).to.match(/proxy_pass http:\/\/scoreboard;/);
      expect(conf).to.match(/limit_req_status 429;/);
    });

    it('does not expose /metrics: nginx answers it itself and never proxies it', () => {
      const metrics = location('= /metrics');
      expect(metrics, 'an exact location for /metrics').to.be.a('string');
      expect(metrics).to.match(/return 40[34];|deny all;/);
      expect(metrics).not.to.match(/proxy_pass/);
    });
  });
});

function k8sFiles(): string[] {
  const dir = path.join(root, 'deploy/k8s');
  return fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join('deploy/k8s', f));
}
