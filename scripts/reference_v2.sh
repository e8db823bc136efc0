#!/usr/bin/env bash
# Reference run v2 (issue 22): the commands that make the shipped policy, in order. Every step
# resumes: run this script again after an interruption and it continues where it stopped
# (a finished step is a no-op). Logs go to runs/ref2-logs/.
#
#   bash scripts/reference_v2.sh data      # demos of all 140 training tasks
#   bash scripts/reference_v2.sh train     # the DAgger runs, two at a time (one core each)
#   bash scripts/reference_v2.sh curves    # success of the kept weights on fixed training tasks
#   bash scripts/reference_v2.sh evaluate  # the paper's protocol: every test task (20 episodes)
#                                          # and every training task (10), both runs
#   bash scripts/reference_v2.sh all       # the four above, in order
#
# On a shared machine run it as "nice -n 19 bash scripts/reference_v2.sh all" so that
# interactive work and CI keep their speed.
#
# Sizes are set below; the README ("Results") says why each was chosen.
set -euo pipefail
cd "$(dirname "$0")/.."
IMITATE=${IMITATE:-.venv/bin/imitate}
PYTHON=${PYTHON:-.venv/bin/python}
LOGS=runs/ref2-logs
mkdir -p "$LOGS"

DEMOS=demos/ref2
PER_TASK=${PER_TASK:-50}
STEPS=${STEPS:-20000}
SNAPSHOT_EVERY=${SNAPSHOT_EVERY:-2500}
DAGGER=(--algo dagger --dagger-rounds 6 --dagger-rollouts 64)
COMMON=(--demos "$DEMOS" --steps "$STEPS" --threads 1 --snapshot-every "$SNAPSHOT_EVERY"
        --log-every 50 --checkpoint-every 250 --quiet)

resume_flag() {  # --resume when the run folder already holds a run
    if [[ -f "$1/policy.pt" ]]; then echo --resume; fi
}

data() {
    "$IMITATE" demos generate --out "$DEMOS" --split train --per-task "$PER_TASK" --workers 2 \
        --quiet >> "$LOGS/generate.log" 2>&1
}

train_run() {  # NAME EXTRA-FLAGS...
    local out=runs/$1
    shift
    "$IMITATE" train --out "$out" "${COMMON[@]}" "$@" $(resume_flag "$out") \
        >> "$LOGS/$(basename "$out").log" 2>&1
}

train() {
    train_run ref2-full-dagger --conditioning full "${DAGGER[@]}" &
    local full=$!
    train_run ref2-final-dagger --conditioning final "${DAGGER[@]}" &
    local final=$!
    wait "$full" "$final"
}

curves() {  # one process per run, then the figure of both
    local run
    for run in ref2-full-dagger ref2-final-dagger; do
        "$PYTHON" scripts/learning_curves.py --runs "runs/$run" --out "$LOGS/curves-$run.png" \
            >> "$LOGS/curves.log" 2>&1 &
    done
    wait
    "$PYTHON" scripts/learning_curves.py --runs runs/ref2-full-dagger runs/ref2-final-dagger \
        --plot-only --out docs/reference-v2-curves.png >> "$LOGS/curves.log" 2>&1
}

evaluate_run() {  # NAME [--no-expert]: test split, then training split; each resumes
    local run=runs/$1
    shift
    "$IMITATE" eval --checkpoint "$run/policy.pt" --split test --episodes-per-task 20 \
        --workers 1 --quiet "$@" >> "$LOGS/eval-$(basename "$run").log" 2>&1
    "$IMITATE" eval --checkpoint "$run/policy.pt" --split train --episodes-per-task 10 \
        --workers 1 --quiet "$@" >> "$LOGS/eval-$(basename "$run").log" 2>&1
}

evaluate() {  # the expert's runs (the Demo column) once, with the full-conditioning policy
    evaluate_run ref2-full-dagger &
    local full=$!
    evaluate_run ref2-final-dagger --no-expert &
    local final=$!
    wait "$full" "$final"
}

case "${1:-all}" in
    data) data ;;
    train) train ;;
    curves) curves ;;
    evaluate) evaluate ;;
    all) data && train && curves && evaluate ;;
    *) echo "usage: $0 data|train|curves|evaluate|all" >&2; exit 2 ;;
esac
