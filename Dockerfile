# syntax=docker/dockerfile:1
# Batching sidecar image: Node 24 slim, production dependencies only, non-root,
# node itself as PID 1 (exec-form entrypoint) so SIGTERM reaches the process
# and starts the graceful drain (SPEC §5). The test in test/deploy runs the
# same entrypoint command against the working tree.

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: no test tools, and no `node` devDependency (the image has Node 24).
# --ignore-scripts: production dependencies need no install scripts.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:24-slim
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
USER node
EXPOSE 8080
# Liveness for plain Docker; Kubernetes uses /healthz and /readyz probes instead.
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.PORT + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "src/main.ts"]
