# cfgserve, the HTTP server, on Debian 12 with Debian's packages only.
#
#   docker build -t cfgserve .
#   docker run --rm -p 8080:8080 --stop-timeout 660 cfgserve
#   docker run --rm -p 8080:8080 -v "$PWD/my-model:/models/my-model:ro" cfgserve \
#       --model /models/my-model
#
# Settings: any cfgserve flag after the image name, or CFGSERVE_* environment variables
# (docker run -e CFGSERVE_MAX_BATCH=4 ...); `docker run --rm cfgserve --help` lists them.

# ---- build: compilers and -dev packages, thrown away after ----
FROM debian:12-slim AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      build-essential cmake pkg-config libmicrohttpd-dev libcjson-dev libopenblas-dev \
      libpng-dev libuv1-dev \
 && rm -rf /var/lib/apt/lists/*
# The same path as in the runtime stage: the binaries find the bundled model
# (models/default) and config/cfgserve.json under the source folder they were built from.
WORKDIR /opt/cfgserve
COPY . .
# Only the two programs: the tests and tools stay out of the image.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build -j"$(nproc)" --target cfgserve cfgserve-generate

# ---- runtime: the shared libraries the programs link, curl for the health check ----
FROM debian:12-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libmicrohttpd12 libcjson1 libopenblas0-pthread libpng16-16 libuv1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cfgserve \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cfgserve \
 && mkdir -p /models /loras \
 && chown cfgserve:cfgserve /models /loras
COPY --from=build /opt/cfgserve/build/bin/cfgserve /opt/cfgserve/build/bin/cfgserve-generate \
     /usr/local/bin/
COPY --from=build /opt/cfgserve/models/default /opt/cfgserve/models/default
COPY --from=build /opt/cfgserve/config/cfgserve.json /opt/cfgserve/config/cfgserve.json

# Your models and LoRA files: mount folders here (read-only is enough) and pass
# --model /models/NAME; without --model the bundled default model serves.
VOLUME ["/models", "/loras"]
# Inside a container the server must listen on every interface (its default is
# 127.0.0.1). Set in the environment as well as in CMD, so that arguments given to
# `docker run` (which replace CMD) keep it. CFGSERVE_LORA_DIR is read by servers that
# have --lora-dir and ignored by older ones.
ENV CFGSERVE_HOST=0.0.0.0 \
    CFGSERVE_PORT=8080 \
    CFGSERVE_LORA_DIR=/loras
USER 10001:10001
EXPOSE 8080
# /health answers as soon as the port is open (readiness, model loaded, is /ready).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${CFGSERVE_PORT}/health" || exit 1
# SIGTERM drains: running and queued jobs finish (each within --job-timeout, 600 s by
# default), new ones get 503; give `docker stop` that long (--stop-timeout / -t).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cfgserve"]
CMD ["--host", "0.0.0.0"]
