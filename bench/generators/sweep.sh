#!/usr/bin/env bash
# The sweep of 2026-12-08 (docs/populations.md, "Twenty-four more"): populations from every
# generator — the three outside ones here and `ebb simulate`'s — with seeds, histories and churn
# rates the model was not built on. Each is generated, evaluated with `ebb eval` (the default
# topology and the shipped prior, nothing trained on it), and summed up in one line: the model's
# and the rule's precision, median leads (days after the last LOGIN), the hindsight yardstick's,
# the AUCs and the targets `ebb eval` checks (docs/churn-model.md, "Evaluation").
#
# Usage: bash bench/generators/sweep.sh OUT_DIR [NAME…]
#   all 24 by default (about 25 minutes on 2 cores, two at a time), or the named ones;
#   a population already evaluated in OUT_DIR is not evaluated again (delete its eval/ to redo).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: sweep.sh OUT_DIR [NAME…]}
shift
mkdir -p "$out"

# name generator seed users days churn [extra: steady's vacations a user-month]
# (generator sim:KIND is `ebb simulate --population KIND`; archetypes takes no churn rate: -)
POPULATIONS='
fader-71 fader 71 3000 30 0.40
steady-72 steady 72 3000 30 0.03
steady-73 steady 73 1500 365 0.40
fader-74 fader 74 1500 365 0.05
sessions-75 sessions 75 3000 30 0.20
sessions-76 sessions 76 3000 90 0.40
fader-77 fader 77 3000 90 0.03
steady-78 steady 78 3000 90 0.10 0.05
sim-mixed-81 sim:mixed 81 3000 365 0.40
sim-habits-82 sim:habits 82 4000 60 0.40
sim-cadence-83 sim:cadence 83 3000 365 0.03
sim-bgnbd-84 sim:bgnbd 84 4000 120 0.10
steady-85 steady 85 3000 60 0.40
sim-archetypes-86 sim:archetypes 86 3000 90 -
sessions-87 sessions 87 2000 365 0.05
fader-88 fader 88 3000 180 0.15
sessions-91 sessions 91 3000 60 0.03
fader-92 fader 92 3000 60 0.40
sim-fades-93 sim:fades 93 3000 180 0.10
sim-bgnbd-94 sim:bgnbd 94 4000 60 0.40
sim-mixed-95 sim:mixed 95 4000 90 0.05
sim-cadence-96 sim:cadence 96 4000 90 0.40
sim-habits-97 sim:habits 97 2000 365 0.03
steady-98 steady 98 3000 120 0.20 0.10
'

one () {
  local name=$1 gen=$2 seed=$3 users=$4 days=$5 churn=$6 extra=${7:-}
  local dir=$out/$name started=$SECONDS
  if [ ! -f "$dir/labels.jsonl" ]; then
    mkdir -p "$dir"
    case $gen in
      sim:*) node bin/ebb.js simulate --population "${gen#sim:}" --users "$users" --days "$days" --seed "$seed" \
               $([ "$churn" = - ] || echo --churn-rate "$churn") --out "$dir/events.jsonl" --labels "$dir/labels.jsonl" > /dev/null ;;
      *) python3 "bench/generators/$gen.py" "$seed" "$users" "$days" "$churn" "$dir" $extra > /dev/null ;;
    esac
  fi
  [ -f "$dir/eval/eval.md" ] || node --max-old-space-size=8000 bin/ebb.js eval --in "$dir/events.jsonl" --labels "$dir/labels.jsonl" --out "$dir/eval" > "$dir/eval.log" 2>&1
  echo "sweep: $name evaluated in $((SECONDS - started)) s" >&2
}
export -f one
export out

if [ $# -gt 0 ]; then list=$(for n in "$@"; do grep -E "^$n " <<< "$POPULATIONS" || { echo "sweep: no population $n" >&2; exit 2; }; done)
else list=$(grep -v '^$' <<< "$POPULATIONS"); fi
[ -f dist/src/cli/main.js ] || npx tsc -p tsconfig.json
echo "sweep: $(wc -l <<< "$list") populations into $out, two at a time" >&2
xargs -P 2 -L 1 bash -c 'one "$@"' _ <<< "$list"

# One line each: | population | model precision | rule precision | median lead model / rule / yardstick | AUC model / daysInactive | targets |
echo '| population | model_risk precision | inactive_7d precision | median lead model / rule / yardstick | AUC model / daysInactive | targets (ebb eval) |'
echo '|---|---|---|---|---|---|'
while read -r name _; do
  f=$out/$name/eval/eval.md
  [ -f "$f" ] || { echo "| $name | (no eval: see $out/$name/eval.log) | | | | |"; continue; }
  awk -F'|' -v name="$name" '
    /^\| model_risk \|/ && !m { mp=$4; ml=$8; m=1 }
    /^\| inactive_7d \|/ && !r { rp=$4; rl=$8; r=1 }
    /^\| yardstick/ && !y { yl=$8; y=1 }
    /^\| label file/ && !a { auc=$5 "/" $6; a=1 }
    /^Targets:/ { sub(/^Targets: /, ""); t=$0 }
    END { gsub(/ /, "", ml); gsub(/ /, "", rl); gsub(/ /, "", yl); printf "| %s |%s|%s| %s / %s / %s |%s| %s |\n", name, mp, rp, ml, rl, (yl == "" ? "—" : yl), auc, t }' "$f"
done <<< "$list"
