# Ebb — multi-stage image. Build: docker build -t ebb .
# Run:   docker run -v ebb-state:/var/lib/ebb -p 8080:8080 -v $PWD/ebb.yaml:/etc/ebb/ebb.yaml ebb
# Demo:  docker run -p 8080:8080 ebb demo
# Stage 1 compiles TypeScript with dev dependencies; stage 2 carries only runtime dependencies.
# Node 24, the active LTS line: `npm test` runs the broker-free suites under 22 and 24 as well as
# the machine's 20 (scripts/test-node.sh).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY bench ./bench
COPY schemas ./schemas
COPY topologies ./topologies
COPY bin ./bin
RUN npm ci && npm run build

FROM node:24-bookworm-slim
# The API listens on all interfaces inside the container (the CLI default is 127.0.0.1).
ENV NODE_ENV=production EBB_STATE_DIR=/var/lib/ebb EBB_HTTP_HOST=0.0.0.0 EBB_HTTP_PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: no TypeScript, vitest or linters at run time. --ignore-scripts: the root
# `prepare` (tsc) is not needed, dist/ comes from the build stage; RocksDB loads its prebuild.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY schemas ./schemas
COPY topologies ./topologies
RUN mkdir -p /var/lib/ebb /etc/ebb && chown 1000:1000 /var/lib/ebb
# The image's `node` user, by number, so that runAsNonRoot policies can verify it.
USER 1000:1000
VOLUME ["/var/lib/ebb"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.EBB_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "--max-semi-space-size=64", "bin/ebb.js"]
CMD ["run", "--config", "/etc/ebb/ebb.yaml"]
