"""``benchmarks/expert.py``: its episode log resumes an interrupted run, refuses another expert."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from envs.expert import EXPERT_VERSION

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "expert.py"


def bench(log: Path, episodes: int) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), "--episodes", str(episodes), "--stages", "1",
               "--modes", "clean", "--workers", "1", "--log", str(log)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_expert_benchmark_logs_every_episode_and_resumes_from_the_log(tmp_path: Path) -> None:
    log = tmp_path / "episodes.jsonl"
    first = bench(log, 2)
    assert first.returncode == 0, first.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["job"]["index"] for r in records] == [0, 1]
    assert all(r["expert_version"] == EXPERT_VERSION and r["success"] for r in records)
    assert "| clean | 1 | 2 | 100.0% |" in first.stdout
    # An interruption cut the last line short: it is skipped and that episode runs again.
    log.write_text(log.read_text()[:-20])
    second = bench(log, 3)
    assert second.returncode == 0, second.stderr
    assert "unreadable line skipped" in second.stderr
    assert "1 of 3 episodes read" in second.stderr
    assert "2 episodes in" in second.stdout and "| clean | 1 | 3 | 100.0% |" in second.stdout
    third = bench(log, 3)
    assert "3 of 3 episodes read" in third.stderr and "0 episodes in" in third.stdout


def test_expert_benchmark_refuses_a_log_of_another_expert_version(tmp_path: Path) -> None:
    log = tmp_path / "episodes.jsonl"
    record = {"expert_version": EXPERT_VERSION - 1,
              "job": {"mode": "clean", "num_stages": 1, "index": 0, "task": "ba", "seed": 1000,
                      "noise": 0.003},
              "success": True, "failure": None, "steps": 40, "seconds": 0.1}
    log.write_text(json.dumps(record) + "\n")
    result = bench(log, 1)
    assert result.returncode != 0
    assert f"expert version {EXPERT_VERSION - 1}, this is version {EXPERT_VERSION}" in result.stderr
    assert log.read_text().count("\n") == 1  # nothing appended


POLICY_SCRIPT = SCRIPT.with_name("policy.py")


def test_policy_benchmark_prints_training_rates_of_0_5_0_eager_and_fused_side_by_side() -> None:
    done = subprocess.run(
        [sys.executable, str(POLICY_SCRIPT), "--training-only", "--rounds", "1",
         "--conditionings", "final", "--cubes", "4", "--threads", "1", "--train-steps", "1",
         "--tasks-per-batch", "2", "--pairs-per-task", "4"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| conditioning"))
    assert "| 0.5.0 | eager | fused | fused / eager | fused / 0.5.0 |" in header
    row = next(line for line in lines if line.startswith("| final | 4 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:4] == ["final", "4", "1", "1"]
    assert all(float(cell) > 0 for cell in cells[4:7])  # samples/s of each path
    assert cells[7].endswith("x") and cells[8].endswith("x")


DEMOS_SCRIPT = SCRIPT.with_name("demos.py")


def test_demos_benchmark_records_the_named_layouts_and_prints_their_steps_per_second() -> None:
    done = subprocess.run(
        [sys.executable, str(DEMOS_SCRIPT), "--demos", "2", "--workers", "1", "--tasks", "ba",
         "ab c"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert "steps/s" in header
    assert [row.split()[:3] for row in rows] == [["2", "ba", "1"], ["3", "ab", "c"]]
    for row in rows:  # the last cells: steps/demo, steps/s, discarded, "37% (expert 26%)"
        steps_per_demo, steps_per_s, discarded = row.split()[-6:-3]
        assert float(steps_per_demo) > 0 and float(steps_per_s) > 0 and discarded == "0"


def test_demos_benchmark_names_an_invalid_layout_and_records_nothing() -> None:
    done = subprocess.run([sys.executable, str(DEMOS_SCRIPT), "--tasks", "ab", "aa b"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "demos.py: invalid task 'aa b': repeated block 'a'"
    assert done.stdout == ""
