# syntax=docker/dockerfile:1
#
# The l4proxy image (docs/deploy.md):
#
#   docker build -t l4proxy .
#   docker run --rm -p 8080:8080 -v "$PWD/l4proxy.yaml:/etc/l4proxy/config.yaml:ro" l4proxy
#
# Three stages: `build` compiles TypeScript to dist/, `deps` installs the production
# dependencies alone, and the final image holds only what runs: dist/, package.json
# (the version is read from it), schema/ (the config file is validated against it) and
# the production node_modules. No compiler, no tests, no npm cache.
#
# This file was not built where it was written (no Docker, no base image there);
# test/e2e/deploy.test.ts checks the paths it copies, the HEALTHCHECK command and the
# entry point against the real build.

ARG NODE_VERSION=24

# ---------------------------------------------------------------- build
FROM node:${NODE_VERSION}-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
# --ignore-scripts: `prepare` would build, and the sources are not here yet (this
# layer stays cached while only src/ changes).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npm run build

# ---------------------------------------------------------------- deps
FROM node:${NODE_VERSION}-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` runs tsc, a dev dependency that is not installed here.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---------------------------------------------------------------- runtime
FROM node:${NODE_VERSION}-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY schema ./schema
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The `l4proxy` command, as `npm install -g` would make it (dist/cli.js has the shebang).
RUN chmod 0755 dist/cli.js && ln -s /app/dist/cli.js /usr/local/bin/l4proxy

# The official image's `node` user, by number: Kubernetes can only check
# `runAsNonRoot` against a numeric user.
USER 1000:1000

# The ports of examples/kubernetes/: a listener on 8080, the admin server on 9090.
# A listener's port is whatever the config file says; EXPOSE only documents it.
EXPOSE 8080 9090

# /healthz of the admin server, with node (a slim image has no curl). It needs the
# admin server on port 9090 (as CMD below); set L4PROXY_HEALTHCHECK_URL for another.
# Kubernetes ignores HEALTHCHECK and uses its probes (examples/kubernetes/).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "require('node:http').get(process.env.L4PROXY_HEALTHCHECK_URL||'http://127.0.0.1:9090/healthz',{timeout:2000},(r)=>process.exit(r.statusCode===200?0:1)).on('timeout',()=>process.exit(1)).on('error',()=>process.exit(1))"]

ENTRYPOINT ["l4proxy"]
CMD ["--config", "/etc/l4proxy/config.yaml", "--admin", "127.0.0.1:9090"]
