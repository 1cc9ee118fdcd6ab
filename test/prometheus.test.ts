import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { parse, stringify } from 'yaml';
import {
  liveMetricNames,
  loadRules,
  metricNames,
  promtool,
  recordedNames,
  unknownNames,
} from './helpers/monitoring';

/**
 * deploy/prometheus/ checked with Debian's promtool (config, rules, and the alerts' unit tests), and every
 * metric a rule names checked against what a live instance really exports at /metrics.
 */
const root = path.resolve(__dirname, '..');
const dir = path.join(root, 'deploy/prometheus');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;
const readYaml = (file: string): Doc => parse(fs.readFileSync(path.join(root, file), 'utf8'));

const rules = loadRules();

describe('Prometheus (deploy/prometheus)', function () {
  this.timeout(60_000);
  let work: string;

  before(() => {
    // A copy with the metrics token file the container gets mounted (promtool checks that it exists).
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'scoreboard-prometheus-'));
    fs.cpSync(dir, work, { recursive: true });
    fs.mkdirSync(path.join(work, 'secrets'), { recursive: true });
    fs.writeFileSync(path.join(work, 'secrets/metrics-token'), 'test-token\n');
  });
  after(() => work && fs.rmSync(work, { recursive: true, force: true }));

  it('promtool check config accepts the compose configuration', async () => {
    const out = await promtool(['check', 'config', 'prometheus.yml'], work);
    expect(out).to.include('SUCCESS');
  });

  it('promtool check config accepts the Kubernetes configuration (discovery swapped for a static target)', async () => {
    // Debian builds Prometheus without Kubernetes discovery, so its promtool rejects kubernetes_sd_configs;
    // everything else (relabelling regexes, authorization, rule files) is still checked.
    const k8s = readYaml('deploy/prometheus/prometheus-k8s.yml');
    for (const job of k8s.scrape_configs) {
      if (!job.kubernetes_sd_configs) continue;
      expect(job.kubernetes_sd_configs).to.deep.equal([{ role: 'pod' }]);
      delete job.kubernetes_sd_configs;
      job.static_configs = [{ targets: ['pod:3000'] }];
    }
    fs.writeFileSync(path.join(work, 'prometheus-k8s-static.yml'), stringify(k8s));
    const out = await promtool(['check', 'config', 'prometheus-k8s-static.yml'], work);
    expect(out).to.include('SUCCESS');
  });

  it('every scoreboard scrape job sends the metrics bearer token and loads the rules', () => {
    for (const file of ['prometheus.yml', 'prometheus-k8s.yml']) {
      const config = readYaml(`deploy/prometheus/${file}`);
      expect(config.rule_files, file).to.deep.equal(['scoreboard.rules.yml']);
      const job = config.scrape_configs.find((j: Doc) => j.job_name === 'scoreboard');
      expect(job, `${file}: job "scoreboard" (the rules and dashboard select on it)`).to.be.an('object');
      expect(job.authorization, file).to.deep.equal({
        type: 'Bearer',
        credentials_file: 'secrets/metrics-token',
      });
      expect(job.metrics_path ?? '/metrics', file).to.equal('/metrics');
    }
    const compose = readYaml('deploy/prometheus/prometheus.yml');
    const targets = compose.scrape_configs.find((j: Doc) => j.job_name === 'scoreboard').static_configs[0]
      .targets;
    expect(targets).to.have.members(['app1:3000', 'app2:3000']);
  });

  it('the pods carry the discovery annotations, and the ServiceMonitor matches the Service and Secret', () => {
    const deployment = readYaml('deploy/k8s/deployment.yaml');
    const annotations = deployment.spec.template.metadata.annotations;
    const container = deployment.spec.template.spec.containers[0];
    expect(annotations['prometheus.io/scrape']).to.equal('true');
    expect(Number(annotations['prometheus.io/port'])).to.equal(
      container.ports.find((p: Doc) => p.name === 'http').containerPort,
    );
    expect(annotations['prometheus.io/path']).to.equal('/metrics');

    const monitor = readYaml('deploy/prometheus/k8s/servicemonitor.yaml');
    const service = readYaml('deploy/k8s/service.yaml');
    const secret = readYaml('deploy/k8s/secret.yaml');
    expect(monitor.kind).to.equal('ServiceMonitor');
    expect(service.metadata.labels).to.deep.include(monitor.spec.selector.matchLabels);
    const [endpoint] = monitor.spec.endpoints;
    expect(service.spec.ports.map((p: Doc) => p.name)).to.include(endpoint.port);
    expect(endpoint.authorization.credentials.name).to.equal(secret.metadata.name);
  });

  it('promtool check rules accepts the rules', async () => {
    const out = await promtool(['check', 'rules', 'scoreboard.rules.yml'], work);
    expect(out).to.include('SUCCESS');
  });

  it('promtool test rules: each fault fires its alert and no other (scoreboard.rules.test.yml)', async () => {
    const out = await promtool(['test', 'rules', 'scoreboard.rules.test.yml'], work);
    expect(out).to.include('SUCCESS');
    // Every alert is proven to fire by at least one test group.
    const tests = readYaml('deploy/prometheus/scoreboard.rules.test.yml').tests as Doc[];
    const fired = new Set(
      tests.flatMap((t) =>
        t.alert_rule_test.filter((a: Doc) => a.exp_alerts.length > 0).map((a: Doc) => a.alertname),
      ),
    );
    const alerts = rules.flatMap((r) => (r.alert ? [r.alert] : []));
    expect(alerts.filter((a) => !fired.has(a))).to.deep.equal([]);
  });

  it('the metric-name check finds names in PromQL and catches one the service does not export', () => {
    expect(
      metricNames(
        'sum by (route, le) (rate(http_request_duration_seconds_bucket{route!~".*/stream"}[5m])) > 0.5 and on () slo:x:ratio offset 1h',
      ),
    ).to.deep.equal(['http_request_duration_seconds_bucket', 'slo:x:ratio']);
    expect(metricNames('label_values(up{job="scoreboard"}, instance)')).to.deep.equal(['up']);
    expect(
      metricNames('sum(rate(score_updates_total{instance=~"$instance"}[$__rate_interval])) * 1e3'),
    ).to.deep.equal(['score_updates_total']);
    const known = new Set(['score_updates_total']);
    expect(
      unknownNames(['rate(score_updatez_total[5m]) / rate(score_updates_total[5m])'], known),
    ).to.deep.equal(['score_updatez_total']);
  });

  it('every rule names only metrics a live instance exports (or other rules record)', async () => {
    const exported = await liveMetricNames();
    // The service's own metrics are really there (a failed scrape would make every check below vacuous).
    expect([...exported]).to.include.members([
      'http_request_duration_seconds_bucket',
      'score_updates_total',
      'score_write_batch_size_count',
      'snapshot_age_seconds',
      'rate_limit_rejections_total',
      'cheat_flags_total',
    ]);
    const known = new Set([...exported, ...recordedNames(rules)]);
    expect(
      unknownNames(
        rules.map((r) => r.expr),
        known,
      ),
    ).to.deep.equal([]);
  });
});
