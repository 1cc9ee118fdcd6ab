import fs from 'node:fs';
import path from 'node:path';
import { builtinModules } from 'node:module';
import { expect } from 'chai';

/**
 * What ships: the image holds dist/src, the knexfile, migrations, seeds and public/ (see the Dockerfile) with
 * production dependencies only. So nothing in those may import a dev dependency, or code from tools/, test/
 * or bench/: such an import would either crash in the image or drag a dev tool into it.
 */
const root = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
};
const SHIPPED = ['src', 'migrations', 'seeds', 'knexfile.ts'];

function filesUnder(rel: string): string[] {
  const full = path.join(root, rel);
  if (fs.statSync(full).isFile()) return [rel];
  return fs.readdirSync(full).flatMap((name) => filesUnder(path.join(rel, name)));
}

const importsOf = (source: string) =>
  [...source.matchAll(/(?:from\s+|import\s+|require\(|import\()\s*'([^']+)'/g)].map((m) => m[1]);

describe('the production image', () => {
  const files = SHIPPED.flatMap(filesUnder).filter((f) => f.endsWith('.ts'));

  it('ships no dev tool: shipped code imports only production dependencies and other shipped code', () => {
    expect(files.length).to.be.greaterThan(20);
    const problems: string[] = [];
    for (const file of files) {
      for (const spec of importsOf(fs.readFileSync(path.join(root, file), 'utf8'))) {
        if (spec.startsWith('.')) {
          const target = path.relative(root, path.resolve(root, path.dirname(file), spec));
          if (!SHIPPED.some((s) => target === s.replace(/\.ts$/, '') || target.startsWith(`${s}/`)))
            problems.push(`${file} imports ${spec} (outside what ships)`);
          continue;
        }
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
        if (spec.startsWith('node:') || builtinModules.includes(name)) continue;
        if (!(name in pkg.dependencies))
          problems.push(`${file} imports ${spec} (not a production dependency)`);
      }
    }
    expect(problems).to.deep.equal([]);
  });

  it('the dev server, token minting, simulator and soak live in tools/, outside src/', () => {
    for (const tool of ['tools/dev.ts', 'tools/token.ts', 'tools/simulate.ts', 'tools/soak.ts'])
      expect(fs.existsSync(path.join(root, tool)), tool).to.equal(true);
    const shipped = files.join('\n');
    expect(shipped).to.not.match(/simulat|\/dev\.ts|\/token\.ts|soak/);
  });
});
