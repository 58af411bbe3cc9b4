#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, combined broker + controller) on 127.0.0.1 for Ebb's
# integration tests and benchmarks, from Maven Central jars (no Docker).
#
#   scripts/kafka.sh start | stop | status | bootstrap | console TOPIC
#   scripts/kafka.sh kill | resume    (SIGKILL the broker; start it again on the data it had: chaos tests)
#
# KAFKA_VERSION (default 3.9.1; 4.x uses the log4j2 backend), KAFKA_PORT (default 19092; the
# controller listens on KAFKA_PORT+1; with KAFKA_TLS_DIR a mutual-TLS listener on KAFKA_PORT+2; with
# KAFKA_SASL=1 a SASL (SCRAM, PLAIN) listener on KAFKA_PORT+3), KAFKA_PROPS (more server.properties
# lines, e.g. a broker setting one test needs; a key given twice takes the later value), KAFKA_DIR
# (default .cache/kafka). Jars are fetched once with Maven into $KAFKA_DIR/<version>/libs; data and
# logs live in $KAFKA_DIR/run-<port>/.
#
# A cluster is several nodes, each started by its own `start` on its own KAFKA_PORT, with
# KAFKA_NODE_ID (1, 2, 3, …), the same KAFKA_VOTERS ("1@127.0.0.1:C1,2@127.0.0.1:C2,…", each
# node's controller port) and the same KAFKA_CLUSTER_ID (`scripts/kafka.sh cluster-id` makes one).
# A node cannot finish starting before a majority of the voters runs: start each with
# KAFKA_NO_WAIT=1, then `scripts/kafka.sh wait` on each port.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VERSION=${KAFKA_VERSION:-3.9.1}
PORT=${KAFKA_PORT:-19092}
CPORT=$((PORT + 1))
BASE=${KAFKA_DIR:-$ROOT/.cache/kafka}
LIBS=$BASE/$VERSION/libs
RUN=$BASE/run-$PORT
PIDFILE=$RUN/kafka.pid
NODE_ID=${KAFKA_NODE_ID:-1}
VOTERS=${KAFKA_VOTERS:-$NODE_ID@127.0.0.1:$CPORT}
log() { printf '[kafka] %s\n' "$*" >&2; }

fetch() {
  [ -f "$LIBS/.complete" ] && return
  log "fetching Apache Kafka $VERSION jars from Maven Central into $LIBS"
  mkdir -p "$LIBS"
  local extra=()
  if [[ $VERSION == 4.* ]]; then
    # Kafka 4 logs through log4j2: swap the reload4j backend for log4j-slf4j2-impl.
    extra=(-f "$ROOT/scripts/kafka/pom-4.xml")
  else
    extra=(-f "$ROOT/scripts/kafka/pom.xml")
  fi
  mvn -q -B "${extra[@]}" -Dkafka.version="$VERSION" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime >&2
  touch "$LIBS/.complete"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  local keep=${1:-}
  if running; then log "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; echo "127.0.0.1:$PORT"; return; fi
  command -v java >/dev/null || { log "java not found: install a JDK 17"; exit 1; }
  fetch
  if [ "$keep" = keep ] && [ -f "$RUN/server.properties" ]; then
    log "resuming Kafka $VERSION on its data in $RUN"
    : > "$RUN/server.log"
    launch
    return
  fi
  rm -rf "$RUN"; mkdir -p "$RUN/data"
  # KAFKA_TLS_DIR (ca.pem, server.pem = the broker's key and certificate chain, PEM): one more
  # listener, TLS with client certificates required, on KAFKA_PORT+2 (the TLS test).
  local listeners="PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT" advertised="PLAINTEXT://127.0.0.1:$PORT" map="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT" tls=""
  if [ -n "${KAFKA_TLS_DIR:-}" ]; then
    listeners="$listeners,SSL://127.0.0.1:$((PORT + 2))"; advertised="$advertised,SSL://127.0.0.1:$((PORT + 2))"; map="$map,SSL:SSL"
    tls="ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_TLS_DIR/server.pem
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_TLS_DIR/ca.pem
ssl.client.auth=required"
  fi
  # KAFKA_SASL=1: one more listener, SASL_PLAINTEXT on KAFKA_PORT+3, with SCRAM-SHA-256/512 (user
  # ebb, password ebb-secret, created when the storage is formatted) and PLAIN (the same user);
  # and ACLs: the authorizer on, ebb (and the TLS client CN=ebb, and the plaintext listeners'
  # ANONYMOUS) super users, user guest (password guest-secret) allowed nothing.
  local sasl="" scram=()
  if [ -n "${KAFKA_SASL:-}" ]; then
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$((PORT + 3))"; advertised="$advertised,SASL_PLAINTEXT://127.0.0.1:$((PORT + 3))"; map="$map,SASL_PLAINTEXT:SASL_PLAINTEXT"
    sasl="sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_ebb=\"ebb-secret\" user_guest=\"guest-secret\";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:ebb;User:CN=ebb"
    scram=(--add-scram 'SCRAM-SHA-256=[name=ebb,password=ebb-secret]' --add-scram 'SCRAM-SHA-512=[name=ebb,password=ebb-secret]' --add-scram 'SCRAM-SHA-512=[name=guest,password=guest-secret]')
  fi
  cat > "$RUN/server.properties" <<PROPS
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=$VOTERS
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
listener.security.protocol.map=$map
$tls
$sasl
inter.broker.listener.name=PLAINTEXT
log.dirs=$RUN/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.ms=-1
${KAFKA_PROPS:-}
PROPS
  cat > "$RUN/log4j.properties" <<L4J
log4j.rootLogger=WARN, file
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$RUN/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
L4J
  cat > "$RUN/log4j2.yaml" <<L4J2
Configuration:
  Appenders:
    File: { name: file, fileName: "$RUN/server.log", PatternLayout: { pattern: "[%d] %p %m (%c)%n" } }
  Loggers:
    Root: { level: WARN, AppenderRef: [{ ref: file }] }
    Logger: [{ name: kafka.server, level: INFO }]
L4J2
  local cp="$LIBS/*"
  local logopts=(-Dlog4j.configuration="file:$RUN/log4j.properties" -Dlog4j2.configurationFile="$RUN/log4j2.yaml")
  local id
  id=${KAFKA_CLUSTER_ID:-$(cluster_id)}
  java -cp "$cp" "${logopts[@]}" kafka.tools.StorageTool format -t "$id" -c "$RUN/server.properties" "${scram[@]}" >"$RUN/format.log" 2>&1 \
    || { log "formatting storage failed:"; cat "$RUN/format.log" >&2; exit 1; }
  log "starting Kafka $VERSION (KRaft) on 127.0.0.1:$PORT"
  launch
}

cluster_id() {
  java -cp "$LIBS/*" -Dlog4j.configuration="file:/dev/null" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1
}

launch() {
  local cp="$LIBS/*"
  local logopts=(-Dlog4j.configuration="file:$RUN/log4j.properties" -Dlog4j2.configurationFile="$RUN/log4j2.yaml")
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -cp "$cp" "${logopts[@]}" kafka.Kafka "$RUN/server.properties" >"$RUN/stdout.log" 2>&1 &
  echo $! > "$PIDFILE"
  if [ -n "${KAFKA_NO_WAIT:-}" ]; then log "launched (pid $(cat "$PIDFILE")); scripts/kafka.sh wait tells when it is ready"; echo "127.0.0.1:$PORT"; return; fi
  wait_ready
}

wait_ready() {
  for _ in $(seq 1 240); do
    if grep -qE "Kafka Server started" "$RUN/server.log" 2>/dev/null; then
      log "ready (pid $(cat "$PIDFILE"))"; echo "127.0.0.1:$PORT"; return
    fi
    if ! running; then log "Kafka exited; its log:"; tail -30 "$RUN/stdout.log" "$RUN/server.log" >&2 2>/dev/null; exit 1; fi
    sleep 0.25
  done
  log "Kafka did not start within 60 s; see $RUN/server.log"; exit 1
}

stop() {
  if ! running; then log "not running"; rm -f "$PIDFILE"; return; fi
  local pid; pid=$(cat "$PIDFILE")
  kill "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  log "stopped"
}

kill9() {
  if ! running; then log "not running"; return; fi
  local pid; pid=$(cat "$PIDFILE")
  kill -9 "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  rm -f "$PIDFILE"
  log "killed (-9) pid $pid; its data stays in $RUN (scripts/kafka.sh resume)"
}

console() {
  # Kafka's own console consumer (read_committed): `scripts/kafka.sh console ebb.recall-tasks`.
  local topic=${2:?usage: $0 console TOPIC}
  fetch
  local main=org.apache.kafka.tools.consumer.ConsoleConsumer
  [[ $VERSION == 3.[0-6].* ]] && main=kafka.tools.ConsoleConsumer
  java -cp "$LIBS/*" -Dlog4j.configuration="file:$RUN/log4j.properties" -Dlog4j2.configurationFile="$RUN/log4j2.yaml" \
    "$main" --bootstrap-server "127.0.0.1:$PORT" --topic "$topic" --from-beginning \
    --isolation-level read_committed --property print.key=true --property print.offset=true --property print.partition=true "${@:3}"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  kill) kill9 ;;
  resume) start keep ;;
  status) if running; then echo "running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; else echo "not running"; exit 3; fi ;;
  bootstrap) echo "127.0.0.1:$PORT" ;;
  fetch) fetch ;;
  wait) running || { log "not running on 127.0.0.1:$PORT"; exit 1; }; wait_ready ;;
  cluster-id) fetch; cluster_id ;;
  console) console "$@" ;;
  *) echo "usage: $0 start|stop|kill|resume|status|wait|bootstrap|fetch|cluster-id|console TOPIC" >&2; exit 2 ;;
esac
