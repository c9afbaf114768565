# Builds nnd and runs its test suite on a clean Debian 12.
#   docker build -t nnd .
FROM debian:12

ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src

# Dependencies first, so that a source change does not reinstall them.
COPY scripts/deps.sh scripts/deps.sh
RUN bash scripts/deps.sh --oracles && rm -rf /var/lib/apt/lists/*

COPY . .
# A build/ copied in from the host would point at the host's source tree.
RUN rm -rf build build-asan && bash scripts/test.sh

CMD ["bash", "scripts/test.sh"]
