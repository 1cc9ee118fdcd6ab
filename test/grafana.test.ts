import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { liveMetricNames, loadRules, metricNames, recordedNames, unknownNames } from './helpers/monitoring';

/**
 * deploy/grafana: the provisioned data source and dashboard fit together, and every query in the dashboard
 * names only metrics a live instance exports or recording rules deploy/prometheus defines.
 */
const root = path.resolve(__dirname, '..');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');
const dashboardFiles = fs
  .readdirSync(path.join(root, 'deploy/grafana/dashboards'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => `deploy/grafana/dashboards/${f}`);

const allPanels = (panels: Doc[]): Doc[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);

function queries(dashboard: Doc): string[] {
  const panelQueries = allPanels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t: Doc) => t.expr));
  const variableQueries = (dashboard.templating?.list ?? [])
    .filter((v: Doc) => v.type === 'query')
    .map((v: Doc) => (typeof v.query === 'string' ? v.query : v.query.query));
  return [...panelQueries, ...variableQueries];
}

describe('Grafana (deploy/grafana)', function () {
  this.timeout(30_000);
  const datasources = parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')).datasources;
  const providers = parse(read('deploy/grafana/provisioning/dashboards/scoreboard.yml')).providers;

  it('provisions one Prometheus data source and a file provider for the dashboards', () => {
    expect(datasources).to.have.length(1);
    expect(datasources[0]).to.include({
      type: 'prometheus',
      uid: 'prometheus',
      url: 'http://prometheus:9090',
    });
    expect(providers[0].type).to.equal('file');
    expect(dashboardFiles).to.have.length.greaterThan(0);
  });

  it('every panel queries the provisioned data source, and every graph has a query', () => {
    for (const file of dashboardFiles) {
      const dashboard = JSON.parse(read(file));
      expect(dashboard.uid, file).to.be.a('string');
      for (const panel of allPanels(dashboard.panels).filter((p) => p.type !== 'row')) {
        expect(panel.datasource?.uid, `${file}: ${panel.title}`).to.equal(datasources[0].uid);
        expect(panel.targets, `${file}: ${panel.title}`).to.have.length.greaterThan(0);
        for (const t of panel.targets)
          expect(t.expr, `${file}: ${panel.title}`).to.be.a('string').with.length.greaterThan(0);
      }
    }
  });

  it('shows what an operator looks for first', () => {
    const dashboard = JSON.parse(read('deploy/grafana/dashboards/scoreboard.json'));
    const names = new Set(queries(dashboard).flatMap(metricNames));
    for (const name of [
      'outcome:score_updates:rate1m', // writes per second by outcome
      'route:http_request_duration_seconds:p99_5m', // latency by route
      'snapshot_age_seconds',
      'snapshot_changes_total',
      'sse_subscribers',
      'score_write_batch_size_bucket',
      'redis_errors_total',
      'mysql_errors_total',
      'up',
    ]) {
      expect([...names], name).to.include(name);
    }
  });

  it('every query names only exported metrics or recording rules', async () => {
    const known = new Set([...(await liveMetricNames()), ...recordedNames(loadRules())]);
    for (const file of dashboardFiles) {
      const exprs = queries(JSON.parse(read(file)));
      expect(exprs.length, file).to.be.greaterThan(10);
      expect(unknownNames(exprs, known), file).to.deep.equal([]);
    }
  });
});
