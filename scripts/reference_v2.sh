#!/usr/bin/env bash
# Reference run v2 (issue 22): the commands that make the shipped policy, in order. Every step
# resumes: run this script again after an interruption and it continues where it stopped (a
# finished step is a no-op). Logs go to runs/ref2-logs/.
#
#   bash scripts/reference_v2.sh data      # demos of all 140 training tasks
#   bash scripts/reference_v2.sh runs      # per variant: train, success of the kept weights
#                                          # on fixed training tasks, then the paper's protocol
#                                          # on every test task (20 episodes) and training task
#                                          # (10). Two lanes, one core each: full conditioning
#                                          # with DAgger, then its ensemble sweep (E = 1, 2, 5,
#                                          # 10 on 16 training tasks of 1 to 4 stages); final-
#                                          # state conditioning with DAgger, then (BC=1, the
#                                          # default) full conditioning with behaviour cloning,
#                                          # evaluated on the test tasks in that lane and on
#                                          # the training tasks in the first
#   bash scripts/reference_v2.sh figure    # the learning curves of every run in one figure
#   bash scripts/reference_v2.sh all       # the three above, in order
#
# On a shared machine run it as "chrt --idle 0 bash scripts/reference_v2.sh all" (Linux: it then
# runs only on CPU time nothing else wants; "nice -n 19" elsewhere) so that interactive work and
# CI keep their speed. Sizes are set below; the README ("Results") says
# why each was chosen.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
IMITATE=${IMITATE:-.venv/bin/imitate}
PYTHON=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-runs}
LOGS=$RUNS/ref2-logs
mkdir -p "$LOGS"

DEMOS=${DEMOS:-demos/ref2}
PER_TASK=${PER_TASK:-50}
STEPS=${STEPS:-20000}         # full conditioning, DAgger and BC
FINAL_STEPS=${FINAL_STEPS:-30000}  # final state: about the CPU time of the full run's 20,000
SNAPSHOT_EVERY=${SNAPSHOT_EVERY:-2500}
BC=${BC:-1}  # 0: no behaviour-cloning run
DAGGER=(--algo dagger --dagger-rounds "${DAGGER_ROUNDS:-6}"
        --dagger-rollouts "${DAGGER_ROLLOUTS:-64}")
COMMON=(--demos "$DEMOS" --threads 1 --snapshot-every "$SNAPSHOT_EVERY"
        --log-every 50 --checkpoint-every 250 --quiet)

data() {
    "$IMITATE" demos generate --out "$DEMOS" --split train --per-task "$PER_TASK" --workers 2 \
        --quiet >> "$LOGS/generate.log" 2>&1
}

train_run() {  # NAME STEPS FLAGS...: --resume when the folder already holds the run (a
    # larger STEPS then extends it)
    local out=$RUNS/$1 steps=$2
    shift 2
    local resume=()
    if [[ -f "$out/policy.pt" ]]; then resume=(--resume); fi
    "$IMITATE" train --out "$out" --steps "$steps" "${COMMON[@]}" "$@" "${resume[@]}" \
        >> "$LOGS/$(basename "$out").log" 2>&1
}

curves_run() {  # NAME: evaluate the run's snapshots on the fixed training tasks
    "$PYTHON" scripts/learning_curves.py --runs "$RUNS/$1" --out "$LOGS/curves-$1.png" \
        >> "$LOGS/curves.log" 2>&1
}

evaluate_split() {  # NAME SPLIT [--no-expert]: 20 episodes per test task, 10 per training task
    local run=$RUNS/$1 split=$2 episodes
    shift 2
    episodes=$([[ $split == test ]] && echo 20 || echo 10)
    "$IMITATE" eval --checkpoint "$run/policy.pt" --split "$split" \
        --episodes-per-task "$episodes" --workers 1 --quiet "$@" \
        >> "$LOGS/eval-$(basename "$run").log" 2>&1
}

evaluate_run() {  # NAME [--no-expert]: test split, then training split; each resumes
    local name=$1
    shift
    evaluate_split "$name" test "$@" && evaluate_split "$name" train "$@"
}

sweep_tasks() {  # the suite's first 4 training tasks of each stage count 1 to 4
    "$PYTHON" -c 'import envs
chosen = {}
for task in envs.load_suite().split("train"):
    chosen.setdefault(task.num_stages, []).append(task.layout)
print(",".join(t for s in (1, 2, 3, 4) for t in chosen[s][:4]))'
}

sweep_run() {  # NAME: the ensemble sweep (paper Table 5), 20 episodes per task, E = 1, 2, 5, 10
    local run=$RUNS/$1 tasks copies
    tasks=$(sweep_tasks)
    for copies in 1 2 5 10; do
        "$IMITATE" eval --checkpoint "$run/policy.pt" --tasks "$tasks" --episodes-per-task 20 \
            --ensemble "$copies" --no-expert --workers 1 --quiet \
            --out "$run/eval-ensemble-$copies" >> "$LOGS/sweep-$1.log" 2>&1 || return
    done
}

pipeline() {  # NAME CONDITIONING dagger|bc STEPS [EVAL FLAGS...]: each step after the one
    # before
    local name=$1 conditioning=$2 algo=$3 steps=$4
    shift 4
    local training=(--algo bc)
    if [[ $algo == dagger ]]; then training=("${DAGGER[@]}"); fi
    train_run "$name" "$steps" --conditioning "$conditioning" "${training[@]}" || return
    curves_run "$name" || return
    evaluate_run "$name" "$@"
}

BC_TRAINED=$LOGS/ref2-full-bc.trained  # written when the BC run has finished training

bc_lane() {  # behaviour cloning: train, curves, then the evaluation on the test tasks
    rm -f "$BC_TRAINED"
    train_run ref2-full-bc "$STEPS" --conditioning full --algo bc || return
    touch "$BC_TRAINED"
    curves_run ref2-full-bc || return
    evaluate_split ref2-full-bc test --no-expert
}

bc_training_split() {  # PID: once the BC run of lane PID has trained, evaluate it on the
    # training tasks (so its two evaluations run side by side, one per core)
    until [[ -f $BC_TRAINED ]]; do
        # that lane has stopped without training BC: nothing to evaluate
        kill -0 "$1" 2> /dev/null || [[ -f $BC_TRAINED ]] || return 1
        sleep "${POLL_SECONDS:-60}"
    done
    evaluate_split ref2-full-bc train --no-expert
}

runs() {  # the final-state run trains faster, so its evaluation also runs the expert (Demo),
    # and behaviour cloning then takes its core while the full-conditioning lane goes on; the
    # full-conditioning lane, once done, evaluates the BC run on the training tasks
    (pipeline ref2-final-dagger final dagger "$FINAL_STEPS" \
        && if [[ $BC == 1 ]]; then bc_lane; fi) &
    local final=$!
    (pipeline ref2-full-dagger full dagger "$STEPS" --no-expert && sweep_run ref2-full-dagger \
        && if [[ $BC == 1 ]]; then bc_training_split "$final"; fi) &
    local full=$!
    local status=0
    wait "$full" || status=$?
    wait "$final" || status=$?
    return "$status"
}

figure() {  # every run trained so far
    local runs=() name
    for name in ref2-full-dagger ref2-final-dagger ref2-full-bc; do
        if [[ -f $RUNS/$name/metrics.jsonl ]]; then runs+=("$RUNS/$name"); fi
    done
    "$PYTHON" scripts/learning_curves.py --runs "${runs[@]}" \
        --plot-only --out docs/reference-v2-curves.png >> "$LOGS/curves.log" 2>&1
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # sourced: only define the steps
    case "${1:-all}" in
        data) data ;;
        runs) runs ;;
        figure) figure ;;
        all) data && runs && figure ;;
        *) echo "usage: $0 data|runs|figure|all" >&2; exit 2 ;;
    esac
fi
