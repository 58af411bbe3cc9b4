# Ebb — multi-stage image. Build: docker build -t ebb .   Run: docker run ebb replay --help
# Stage 1 compiles TypeScript with dev dependencies; stage 2 carries only runtime dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY bench ./bench
COPY schemas ./schemas
COPY topologies ./topologies
COPY bin ./bin
RUN npm ci && npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production EBB_STATE_DIR=/var/lib/ebb
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the root `prepare` (tsc) is not needed, dist/ comes from the build stage.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY schemas ./schemas
COPY topologies ./topologies
RUN mkdir -p /var/lib/ebb && chown node:node /var/lib/ebb
USER node
VOLUME ["/var/lib/ebb"]
ENTRYPOINT ["node", "bin/ebb.js"]
CMD ["demo"]
