# syntax=docker/dockerfile:1

# ---- build: all dependencies, compile TypeScript to dist/ ----
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build

# ---- runtime: production dependencies and the compiled service only ----
FROM node:20-bookworm-slim AS runtime
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
CMD ["node", "dist/src/main.js"]
