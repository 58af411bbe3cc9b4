#!/usr/bin/env bash
# Trains the shipped churn-model prior (topologies/churn-model.json): every partition starts from
# it and learns its own population from the stream (docs/churn-model.md). The prior is fitted on
# five populations, one from each generator (seeds 101–105: the held-out populations of
# `npm run bench -- populations` use seeds 201+), with their ground truth. About 10 minutes on 2
# cores. Data goes to .cache/model/ (not committed). USERS / DAYS override the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-3000}
DAYS=${DAYS:-150}
mkdir -p .cache/model
ebb () { node bin/ebb.js "$@"; }
ebb simulate --population archetypes --users "$USERS" --days "$DAYS" --seed 101 --out .cache/model/archetypes.jsonl
ebb simulate --population habits --users "$USERS" --days "$DAYS" --seed 102 --churn-rate 0.2 --out .cache/model/habits.jsonl
ebb simulate --population fades --users "$USERS" --days "$DAYS" --seed 103 --churn-rate 0.25 --out .cache/model/fades.jsonl
ebb simulate --population cadence --users "$USERS" --days "$DAYS" --seed 104 --churn-rate 0.15 --out .cache/model/cadence.jsonl
ebb simulate --population bgnbd --users "$USERS" --days "$DAYS" --seed 105 --churn-rate 0.25 --out .cache/model/bgnbd.jsonl
ins=() labels=()
for p in archetypes habits fades cadence bgnbd; do ins+=(--in ".cache/model/$p.jsonl"); labels+=(--labels ".cache/model/$p.labels.jsonl"); done
ebb train "${ins[@]}" "${labels[@]}" --intercept-per-input --out topologies/churn-model.json
