# cfgserve on Debian 12: builds the engine and tools with Debian's packages only.
FROM debian:12-slim
WORKDIR /opt/cfgserve
COPY . .
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      build-essential cmake pkg-config libmicrohttpd-dev libcjson-dev libopenblas-dev \
      libpng-dev libuv1-dev \
 && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build -j"$(nproc)" \
 && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["/opt/cfgserve/build/bin/cfgserve-generate"]
