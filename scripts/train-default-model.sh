#!/usr/bin/env bash
# Trains the shipped default churn model (topologies/churn-model.json) on a simulated population
# and evaluates it on a held-out population simulated with another seed; writes the evaluation to
# docs/model-eval.md and docs/model-eval.json. About 10 minutes on 2 cores. Data goes to
# .cache/model/ (not committed). USERS_TRAIN / USERS_EVAL / DAYS override the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS_TRAIN=${USERS_TRAIN:-20000}
USERS_EVAL=${USERS_EVAL:-50000}
DAYS=${DAYS:-180}
mkdir -p .cache/model
ebb () { node bin/ebb.js "$@"; }
ebb simulate --users "$USERS_TRAIN" --days "$DAYS" --seed 11 --out .cache/model/train.jsonl
ebb train --in .cache/model/train.jsonl --labels .cache/model/train.labels.jsonl --out topologies/churn-model.json
ebb simulate --users "$USERS_EVAL" --days "$DAYS" --seed 12 --out .cache/model/heldout.jsonl
ebb eval --in .cache/model/heldout.jsonl --labels .cache/model/heldout.labels.jsonl --model topologies/churn-model.json --out .cache/model/eval
cp .cache/model/eval/eval.md docs/model-eval.md
cp .cache/model/eval/eval.json docs/model-eval.json
