# syntax=docker/dockerfile:1

# Node 24, the current LTS (Node 20 left support in April 2026), pinned to an exact release so a rebuild
# gets the same runtime. Both stages use the same image. To update: pick the newest 24.x from
# https://nodejs.org/en/about/previous-releases and change both FROM lines (package.json keeps "node": ">=20").
# To pin by digest as well (immutable, what production should build from), resolve the tag where Docker Hub
# is reachable and append it to both FROM lines:
#   docker buildx imagetools inspect node:24.11.1-bookworm-slim --format '{{json .Manifest.Digest}}'
#   FROM node:24.11.1-bookworm-slim@sha256:<that digest> AS build
# (the digest of the multi-platform index, so amd64 and arm64 builds both resolve). Renovate or Dependabot
# can keep tag and digest current. No digest here: it could not be verified from where this was written.

# ---- build: all dependencies, compile TypeScript to dist/ ----
FROM node:24.11.1-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build

# ---- runtime: production dependencies and the compiled service only ----
FROM node:24.11.1-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
# The service, its CLIs (dist/src/cli/db.js), the knexfile and the compiled migrations and seeds.
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/knexfile.js ./dist/knexfile.js
COPY --from=build /app/dist/migrations ./dist/migrations
COPY --from=build /app/dist/seeds ./dist/seeds
# The scoreboard page and its assets (GET /), found at the root beside dist/.
COPY --from=build /app/public ./public

# Files stay owned by root (read-only to the service); the process runs as the image's unprivileged user.
USER node
EXPOSE 3000

# Liveness of the process itself (GET /healthz); slim images have no curl, node does the request.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "require('http').get({host:'127.0.0.1',port:process.env.PORT||3000,path:'/healthz',timeout:2000},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]

# Production entry point: refuses to start without JWT configuration.
# Migrations from the same image: docker run --rm -e DATABASE_URL=... IMAGE node dist/src/cli/db.js migrate
# (or the knex CLI on the compiled knexfile: ... IMAGE npx knex --knexfile dist/knexfile.js migrate:status)
CMD ["node", "dist/src/main.js"]
