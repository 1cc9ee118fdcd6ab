/**
 * Entry point for the knex CLI (`npx knex migrate:latest`, ...), which looks for knexfile.js before
 * knexfile.ts. knex 3 loads a TypeScript knexfile through interpret 2.x, whose list of TypeScript loaders
 * (ts-node, sucrase, @babel/register, ...) does not include tsx, so `npx knex` against knexfile.ts fails
 * with "Failed to load external module ts-node/register" and then a syntax error at the first type
 * annotation. Registering tsx here (already our loader for development and tests) and re-exporting the
 * TypeScript knexfile keeps one configuration and adds no second TypeScript toolchain.
 *
 * Development only: tsx is a dev dependency. In the production image use the compiled configuration:
 * `npx knex --knexfile dist/knexfile.js migrate:status` or `node dist/src/cli/db.js migrate`.
 */
try {
  require('tsx/cjs');
} catch (err) {
  throw new Error(
    `knexfile.js needs tsx (a dev dependency: run npm ci). In a production image use --knexfile dist/knexfile.js. (${err.message})`,
    { cause: err },
  );
}
module.exports = require('./knexfile.ts').default;
