#!/usr/bin/env bash
# The test suite in two lanes that run at the same time (what `npm test`, and so CI, runs after
# the build and the lint). Vitest runs one file at a time on a 2-core machine, and most of the
# broker suites' time is spent waiting (a JVM starting, a broker coming back after a SIGKILL, a
# retry timeout running out), so a second lane uses the idle core:
#   kafka   — test/kafka and test/ops (real brokers, Prometheus, `ebb` processes, the chaos
#             and hanging-transaction tests) under Node 24, the newest supported LTS line, then
#             the production-mode suite (test/kafka/run.test.ts, less its operations scenarios)
#             and the broker outage, TLS/SASL and unreachable-start tests under this machine's
#             Node (20, past its end of life);
#   compute — every other suite under Node 22 and 24, and under this machine's Node less the
#             population studies, at a lower CPU priority (nice 10), so the broker lane's
#             processes get the CPU when they need it.
# Each line is prefixed with its lane; the exit status is 1 if either lane failed.
# `bash scripts/test-lanes.sh kafka` (or compute) runs one lane alone.
# Expects a fresh build (`npm run build`; EBB_TEST_BUILT=1 keeps scripts/test-node.sh from
# rebuilding dist/ while the other lane's tests read it).
set -uo pipefail
cd "$(dirname "$0")/.."
export EBB_TEST_BUILT=1
VITEST=node_modules/vitest/vitest.mjs
BROKER_SUITES=(test/kafka test/ops)
# under the machine's Node (20) too: the production mode's suite and the outage, TLS/SASL and
# unreachable-start tests (each of those on a broker of its own port; run.test.ts on KAFKA_PORT's)
NODE20_BROKER_FILES=(test/kafka/run.test.ts test/kafka/outage.test.ts test/kafka/security.test.ts test/ops/run-unreachable.test.ts)
POPULATION_STUDIES=(test/model/eval.test.ts test/model/earlier-than.test.ts test/replay/recall-invariants.test.ts test/unit/simulator.test.ts)

kafka_lane() {
  local failed=0
  # The whole broker suite on a supported LTS line (Node 20 is past its end of life): the `ebb`
  # processes the tests start run on the same Node (process.execPath).
  bash scripts/test-node.sh 24 "${BROKER_SUITES[@]}" || failed=1
  # less the benchmark suites' quick run (about 60 s; the same code under 24 proves it has not rotted)
  # and the operations scenarios (reset, lost offsets and topics, retention, new partitions…:
  # Ebb's own logic over the client calls the rest of the file makes; about 150 s)
  KAFKA_PORT=29792 node "$VITEST" run "${NODE20_BROKER_FILES[@]}" -t '^(?!.*(each suite runs against the real broker|operations on a running application))' || failed=1
  return $failed
}
compute_lane() {
  # --no-isolate: the files of a pass share one worker's module cache instead of loading dist/,
  # RocksDB, fastify and the time-zone database again for each (47 of 315 s a pass; 259 s
  # without isolation, 2026-12-07, every file passing both ways). A file that came to depend on
  # another's module state would fail here, not under `npx vitest run`, which isolates.
  local rest=(--no-isolate --exclude 'test/kafka/**' --exclude 'test/ops/**')
  local failed=0
  # Node 20 (past its end of life) skips the population studies: arithmetic over simulated
  # populations of thousands of users (the model's evaluation and training, earlierThan over
  # populations, the 10k-user recall check, the simulators), the same JavaScript under 22 and 24,
  # with nothing of the Node line's own (about 150 s a pass). Every other suite runs under all three.
  node "$VITEST" run "${rest[@]}" "${POPULATION_STUDIES[@]/#/--exclude=}" || failed=1
  bash scripts/test-node.sh 22 "${rest[@]}" || failed=1
  bash scripts/test-node.sh 24 "${rest[@]}" || failed=1
  return $failed
}

case "${1:-}" in
  kafka) export EBB_VITEST_CACHE=node_modules/.vite/lane-kafka; kafka_lane; exit $? ;;
  compute) export EBB_VITEST_CACHE=node_modules/.vite/lane-compute; compute_lane; exit $? ;;
esac
# Background jobs of a script ignore SIGINT: a Ctrl-C (or CI's SIGTERM) stops both lanes here.
trap 'trap - INT TERM; rm -rf "${LOGS:-}"; kill 0; exit 130' INT TERM
# Both lanes use Node 24: installed once, before they start, not by both at once.
bash scripts/test-node.sh 22 --install-only && bash scripts/test-node.sh 24 --install-only || exit 1
start=$SECONDS
# Each lane's output is kept too, so that a failure is named again at the very end: the lanes
# print thousands of lines, and what a CI log keeps of a run is often only its tail.
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/ebb-test-lanes.XXXXXX") || exit 1
( bash "$0" kafka 2>&1 | sed -u 's/^/[kafka]   /' | tee "$LOGS/kafka.log"; exit "${PIPESTATUS[0]}" ) &
kafka=$!
( nice -n 10 bash "$0" compute 2>&1 | sed -u 's/^/[compute] /' | tee "$LOGS/compute.log"; exit "${PIPESTATUS[0]}" ) &
compute=$!
wait "$kafka"; kafka_status=$?
wait "$compute"; compute_status=$?
recap() {
  # vitest's sections of failures (tests, suites — a beforeAll, an import —, unhandled errors) up
  # to the run's summary, then the failed files and tests, last, so that even a short tail of
  # the log keeps their names; colours removed. Where vitest printed none (the lane failed
  # outside it), the log's last lines.
  local text
  text=$(sed 's/\x1b\[[0-9;]*m//g' "$1")
  local found
  found=$( { awk '/⎯ (Failed (Tests|Suites)|Unhandled Errors?) / { on = 1 } /^\[[a-z]+\] +Test Files / { on = 0 } on { print }' <<<"$text" | head -60
             grep -E '^\[[a-z]+\] +(❯ .*[0-9]+ failed( \||\))|× |FAIL )' <<<"$text" | head -20; } )
  if [ -n "$found" ]; then echo "$found"; else tail -30 <<<"$text"; fi
}
for lane in kafka compute; do
  status_var=${lane}_status
  if [ "${!status_var}" != 0 ]; then echo "[test-lanes] what failed in the $lane lane:" >&2; recap "$LOGS/$lane.log" >&2; fi
done
rm -rf "$LOGS"
echo "[test-lanes] kafka lane: $([ $kafka_status = 0 ] && echo passed || echo FAILED); compute lane: $([ $compute_status = 0 ] && echo passed || echo FAILED); $((SECONDS - start)) s" >&2
[ $kafka_status = 0 ] && [ $compute_status = 0 ]
