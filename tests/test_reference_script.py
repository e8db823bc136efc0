"""``scripts/reference_v2.sh runs``: the order of the reference run's steps in its two lanes, the
final-state lane waiting for lane 2's runs to have trained before it evaluates them, and a
failed step stopping only what depends on it.

The script is real bash; the ``imitate`` and ``python`` it calls are stand-ins (``IMITATE`` and
``PYTHON``) that write each call to a trace file and, for ``train``, the checkpoint a later step
reads. Hours of training and evaluation would otherwise stand behind a test of a few seconds of
control flow; the commands themselves have their own tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reference_v2.sh"

#: Stands in for ``imitate``: traces "START|END <run> <command> <flags but --out, --checkpoint>",
#: trains by keeping a snapshot at once and writing ``policy.pt`` after ``TRAIN_SECONDS_<variant>``
#: seconds, fails a training run named in ``FAIL_TRAIN`` with status 3, fails an evaluation of a
#: missing checkpoint, and one whose flags hold ``FAIL_EVAL`` with status 4, and takes
#: ``EVAL_SECONDS`` over any other.
FAKE_IMITATE = r"""#!/usr/bin/env bash
command=$1; shift
run=""; checkpoint=""; flags=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --out) [[ $command == train ]] && run=$(basename "$2"); shift ;;
        --checkpoint) run=$(basename "$(dirname "$2")"); checkpoint=$2; shift ;;
        *) flags+=("$1") ;;
    esac
    shift
done
echo "START $run $command ${flags[*]}" >> "$TRACE"
if [[ $command == train ]]; then
    [[ $run == "${FAIL_TRAIN:-}" ]] && exit 3
    variable=TRAIN_SECONDS_${run//-/_}
    mkdir -p "$RUNS/$run/snapshots" && touch "$RUNS/$run/snapshots/step-0002500.pt"
    sleep "${!variable:-0}"
    mkdir -p "$RUNS/$run" && touch "$RUNS/$run/policy.pt" "$RUNS/$run/metrics.jsonl"
elif [[ ! -f $checkpoint ]]; then
    exit 2
elif [[ -n ${FAIL_EVAL:-} && " ${flags[*]} " == *" $FAIL_EVAL "* ]]; then
    exit 4
else
    sleep "${EVAL_SECONDS:-0}"
fi
echo "END $run $command ${flags[*]}" >> "$TRACE"
"""

#: Stands in for ``python``: prints sweep tasks for ``-c``, else traces the script it runs, and
#: when the script has run for ``PYTHON_SECONDS`` seconds, traces "PYTHON-END <script> <flags>".
FAKE_PYTHON = r"""#!/usr/bin/env bash
if [[ $1 == -c ]]; then echo "ab,abc"; exit 0; fi
echo "PYTHON $*" >> "$TRACE"
sleep "${PYTHON_SECONDS:-0}"
echo "PYTHON-END $*" >> "$TRACE"
"""


def run_lanes(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    """Run ``reference_v2.sh runs`` with the stand-ins; its exit status and trace lines."""
    return run_step(tmp_path, "runs", **env)


def run_step(tmp_path: Path, step: str, **env: str) -> tuple[int, list[str]]:
    """Run ``reference_v2.sh STEP`` with the stand-ins; its exit status and trace lines."""
    for name, text in (("imitate", FAKE_IMITATE), ("python", FAKE_PYTHON)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    trace = tmp_path / "trace"
    trace.touch()
    environment = {**os.environ, "IMITATE": str(tmp_path / "imitate"),
                   "PYTHON": str(tmp_path / "python"), "RUNS": str(tmp_path / "runs"),
                   "TRACE": str(trace), "POLL_SECONDS": "0.1", **env}
    done = subprocess.run(["bash", str(SCRIPT), step], env=environment, capture_output=True,
                          text=True, timeout=120, check=False)
    return done.returncode, trace.read_text().splitlines()


def position(trace: list[str], prefix: str) -> int:
    """Index of the one trace line starting with ``prefix``."""
    found = [i for i, line in enumerate(trace) if line.startswith(prefix)]
    assert len(found) == 1, (prefix, trace)
    return found[0]


def test_each_lane_runs_its_steps_in_order(tmp_path: Path) -> None:
    status, trace = run_lanes(tmp_path)
    assert status == 0, trace
    sweep = [f"ref2-full-dagger eval --tasks ab,abc --episodes-per-task 20 --ensemble {copies} "
             "--no-expert" for copies in (1, 2, 5, 10)]
    final_lane = ["END ref2-final-dagger train --steps 20000",
                  "END ref2-final-dagger train --steps 40000",
                  f"PYTHON scripts/learning_curves.py --runs {tmp_path}/runs/ref2-final-dagger",
                  *[f"START {s}" for s in sweep], "START ref2-full-dagger eval --split train",
                  "START ref2-full-bc eval --split train"]
    full_lane = ["END ref2-full-dagger train", "PYTHON scripts/learning_curves.py --runs "
                 f"{tmp_path}/runs/ref2-full-dagger", "START ref2-full-dagger eval --split test",
                 "START ref2-full-bc train",
                 "END ref2-full-bc train", "START ref2-full-bc eval --split test"]
    for steps in (final_lane, full_lane):
        at = [position(trace, step) for step in steps]
        assert at == sorted(at), steps
    # The shipped run's test and training tasks come after its training, before its curves.
    trained, curves = (position(trace, step) for step in final_lane[1:3])
    for split in ("test", "train"):
        assert trained < position(trace, f"START ref2-final-dagger eval --split {split}") \
            < position(trace, f"END ref2-final-dagger eval --split {split}") < curves
    # One core per lane; only the final-state run's evaluation runs the expert.
    evaluations = [line for line in trace if line.startswith("START") and " eval " in line]
    assert all("--workers 1" in line for line in evaluations), evaluations
    assert [line for line in evaluations if "--no-expert" not in line] == [
        line for line in evaluations if line.startswith("START ref2-final-dagger")]


def test_final_state_lane_waits_for_the_full_run_before_its_sweep(tmp_path: Path) -> None:
    status, trace = run_lanes(tmp_path, TRAIN_SECONDS_ref2_full_dagger="1.5")
    assert status == 0, trace
    assert position(trace, "START ref2-full-dagger eval --tasks ab,abc --episodes-per-task 20 "
                    "--ensemble 1 ") > position(trace, "END ref2-full-dagger train")
    # ... and does not wait to evaluate its own run.
    assert position(trace, "START ref2-final-dagger eval --split train") < position(
        trace, "END ref2-full-dagger train")


def test_the_shipped_run_evaluates_its_test_and_training_tasks_side_by_side(
        tmp_path: Path) -> None:
    status, trace = run_lanes(tmp_path, EVAL_SECONDS="1")
    assert status == 0, trace
    starts = [position(trace, f"START ref2-final-dagger eval --split {split}")
              for split in ("test", "train")]
    ends = [position(trace, f"END ref2-final-dagger eval --split {split}")
            for split in ("test", "train")]
    assert max(starts) < min(ends), trace


def test_bc_training_split_waits_for_bc_training(tmp_path: Path) -> None:
    status, trace = run_lanes(tmp_path, TRAIN_SECONDS_ref2_full_bc="1.5")
    assert status == 0, trace
    assert position(trace, "START ref2-full-bc eval --split train") > position(
        trace, "END ref2-full-bc train")


def test_lane_1_evaluates_bc_snapshots_while_bc_trains_one_pass_at_a_time(
        tmp_path: Path) -> None:
    status, trace = run_lanes(tmp_path, TRAIN_SECONDS_ref2_full_bc="2", PYTHON_SECONDS="0.5")
    assert status == 0, trace
    figure = f"--out {tmp_path}/runs/ref2-logs/curves-ref2-full-bc.png"
    passes = [line.split(" ", 1)[0] for line in trace if line.endswith(figure)]
    first = next(i for i, line in enumerate(trace) if line.endswith(figure))
    assert first < position(trace, "END ref2-full-bc train"), trace
    # Lane 2's own pass after training waits for lane 1's pass in flight: no two overlap.
    assert len(passes) >= 4 and passes == ["PYTHON", "PYTHON-END"] * (len(passes) // 2), trace
    assert position(trace, "START ref2-full-bc eval --split train") > position(
        trace, "END ref2-full-bc train")


def test_bc_step_trains_bc_alone_with_its_curves_then_test_then_training_tasks(
        tmp_path: Path) -> None:
    """``bc``, for a machine that lost the DAgger runs: only the BC run, its curves while it
    trains, then its test tasks before its training tasks, each on two workers."""
    status, trace = run_step(tmp_path, "bc", TRAIN_SECONDS_ref2_full_bc="1.5",
                             PYTHON_SECONDS="0.3")
    assert status == 0, trace
    assert not any("dagger" in line for line in trace), trace
    curves = [i for i, line in enumerate(trace) if line.startswith("PYTHON scripts/learning_")]
    assert len(curves) >= 2 and curves[0] < position(trace, "END ref2-full-bc train"), trace
    order = ["END ref2-full-bc train", "START ref2-full-bc eval --split test",
             "END ref2-full-bc eval --split test", "START ref2-full-bc eval --split train"]
    at = [position(trace, step) for step in order]
    assert at == sorted(at) and at[1] > curves[-1], trace
    evaluations = [line for line in trace if line.startswith("START") and " eval " in line]
    assert len(evaluations) == 2 and all(
        "--workers 2" in line and "--no-expert" in line for line in evaluations), evaluations


def test_bc_step_with_failed_training_evaluates_nothing(tmp_path: Path) -> None:
    status, trace = run_step(tmp_path, "bc", FAIL_TRAIN="ref2-full-bc")
    assert status == 3, trace
    assert not any(" eval " in line for line in trace), trace


@pytest.mark.parametrize("failing", ["ref2-final-dagger", "ref2-full-dagger"])
def test_a_failed_training_stops_what_depends_on_it_and_fails_the_script(tmp_path: Path,
                                                                         failing: str) -> None:
    status, trace = run_lanes(tmp_path, FAIL_TRAIN=failing)
    assert status == 3
    assert not any(line.startswith(f"START {failing} eval") for line in trace), trace
    # The full run's evaluations do not depend on the final-state run, nor the final-state
    # run's on the full run.
    other = "ref2-full-dagger" if failing == "ref2-final-dagger" else "ref2-final-dagger"
    assert any(line.startswith(f"START {other} eval --split train") for line in trace), trace
    # BC trains after the full run, in its lane, and both its evaluations follow its training,
    # whatever became of the final-state run.
    for step in ("START ref2-full-bc train", "START ref2-full-bc eval --split test",
                 "START ref2-full-bc eval --split train"):
        assert any(line.startswith(step) for line in trace) == (failing == "ref2-final-dagger")


def test_a_failed_ensemble_sweep_leaves_the_full_runs_training_tasks_to_run(
        tmp_path: Path) -> None:
    status, trace = run_lanes(tmp_path, FAIL_EVAL="--ensemble 1")
    assert status == 4, trace
    assert not any(line.startswith("START ref2-full-dagger eval --tasks ab,abc "
                                   "--episodes-per-task 20 --ensemble 2 ") for line in trace)
    assert position(trace, "END ref2-full-dagger eval --split train") > position(
        trace, "START ref2-full-dagger eval --tasks ab,abc --episodes-per-task 20 --ensemble 1 ")


def test_bc_0_skips_behaviour_cloning(tmp_path: Path) -> None:
    status, trace = run_lanes(tmp_path, BC="0")
    assert status == 0, trace
    assert not any("ref2-full-bc" in line for line in trace), trace


def test_final_state_trains_to_20000_then_40000_and_each_size_can_be_overridden(
        tmp_path: Path) -> None:
    """Final-state conditioning first trains 20,000 steps, which places its DAgger rounds where
    the shipped run's first ``--steps`` put them, then resumes to 40,000 (30,000 is about the CPU
    time of full conditioning's 20,000, and the shipped run went on); ``FINAL_FIRST_STEPS``,
    ``FINAL_STEPS`` and ``STEPS`` change them, and runs already there then resume."""
    def trainings(trace: list[str]) -> dict[str, list[tuple[str, bool]]]:
        """Each run's training calls in order: their --steps, and whether they resume."""
        calls: dict[str, list[tuple[str, bool]]] = {}
        for line in trace:
            words = line.split()
            if words[0] == "START" and words[2] == "train":
                calls.setdefault(words[1], []).append(
                    (line.split("--steps ")[1].split()[0], line.endswith("--resume")))
        return calls

    status, first = run_lanes(tmp_path)
    assert status == 0, first
    assert trainings(first) == {"ref2-final-dagger": [("20000", False), ("40000", True)],
                                "ref2-full-dagger": [("20000", False)],
                                "ref2-full-bc": [("20000", False)]}
    status, both = run_lanes(tmp_path, FINAL_FIRST_STEPS="10000", FINAL_STEPS="45000",
                             STEPS="25000")
    assert status == 0, both
    assert trainings(both[len(first):]) == {
        "ref2-final-dagger": [("10000", True), ("45000", True)],
        "ref2-full-dagger": [("25000", True)], "ref2-full-bc": [("25000", True)]}


def test_ship_exports_the_final_state_run_then_tables_every_evaluated_variant(
        tmp_path: Path) -> None:
    """``ship`` exports the final-state run with both its reports, then writes the tables and
    figure of each variant that has a test-task evaluation (here not BC, never evaluated)."""
    runs = tmp_path / "runs"
    for run in ("ref2-final-dagger", "ref2-full-dagger"):
        (runs / run / "eval-test").mkdir(parents=True)
    status, trace = run_step(tmp_path, "ship")
    assert status == 0, trace
    final = runs / "ref2-final-dagger"
    assert [line for line in trace if line.startswith("PYTHON ")] == [
        f"PYTHON scripts/export_pretrained.py {final} --report {final}/eval-train "
        f"--report {final}/eval-test",
        f"PYTHON scripts/reference_tables.py --variant DAgger, final state={final} "
        f"--variant DAgger, full={runs}/ref2-full-dagger --markdown docs/reference-v2-results.md "
        "--figure docs/reference-v2-success.png"]
