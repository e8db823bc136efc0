"""``scripts/paired_episodes.py``: two evaluations of the same episodes, compared episode by
episode, on logs written by the episode log's own writer."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from imitate.episode_log import appending
from imitate.evaluation import EpisodeResult

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "paired_episodes.py"
_spec = importlib.util.spec_from_file_location("paired_episodes", SCRIPT)
paired = importlib.util.module_from_spec(_spec)
sys.modules["paired_episodes"] = paired  # its dataclass looks its module up
_spec.loader.exec_module(paired)

HEADER = {"imitate": "test", "checkpoint_sha256": "0" * 64, "split": "test", "tasks": None,
          "episodes_per_task": 4, "ensemble": 1, "seed": 0, "expert": False,
          "demo_noise": 0.003, "videos": 0}


def result(task: str, episode: int, success: bool) -> EpisodeResult:
    stages = len(task.replace(" ", "")) - len(task.split())
    return EpisodeResult(split="test", task=task, num_stages=stages, episode=episode,
                         env_seed=1000 + episode, demo_env_seed=2000 + episode, demo_steps=100,
                         success=success, failure=None if success else "recoverable",
                         stage=stages if success else 0, steps=50, expert_success=None,
                         expert_failure=None, policy_seconds=0.1, env_seconds=0.1,
                         demo_seconds=0.1, expert_seconds=0.0, novelty="unseen")


def write_log(folder: Path, outcomes: dict[str, str]) -> Path:
    """An eval folder whose log holds, per task, one episode per character of its outcome
    string ("1" success, "0" failure)."""
    with appending(folder / "episodes.jsonl", HEADER, []) as append:
        for task, flags in outcomes.items():
            for episode, flag in enumerate(flags):
                append(result(task, episode, flag == "1"))
    return folder


def run(*args: Path | str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True)


def test_counts_what_each_evaluation_won_that_the_other_lost(tmp_path: Path) -> None:
    a = write_log(tmp_path / "a", {"abc": "1100", "acb": "1010", "abcde": "0000"})
    # B: one episode fewer of 'acb' (still running), one 4-stage gain.
    b = write_log(tmp_path / "b", {"abc": "0111", "acb": "110", "abcde": "0100"})
    done = run(a, b)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # 2 stages: 7 paired; A 2 + 2 = 4, B 3 + 2 = 5; B won abc 2, 3 and acb 1; A won abc 0, acb 2.
    assert "| 2 | all | 7 | 4 | 5 | 3 | 2 | 1.000 |" in lines
    assert "| 4 | all | 4 | 0 | 1 | 1 | 0 | 1.000 |" in lines
    assert "| all | all | 11 | 4 | 6 | 4 | 2 | 0.688 |" in lines
    by_task = run(a, b, "--by-task").stdout.splitlines()
    assert "| 2 | acb | 3 | 2 | 2 | 1 | 1 | 1.000 |" in by_task
    assert "| 2 | abc | 4 | 2 | 3 | 2 | 1 | 1.000 |" in by_task
    # The log file itself is accepted as well as its folder.
    assert run(a / "episodes.jsonl", b).stdout.splitlines()[3:] == lines[3:]


@pytest.mark.parametrize(("a_only", "b_only", "p"), [(0, 0, 1.0), (0, 5, 0.0625),
                                                     (16, 25, 0.2110), (15, 36, 0.0046)])
def test_mcnemar_p_is_the_exact_two_sided_binomial_tail(a_only: int, b_only: int,
                                                        p: float) -> None:
    counts = paired.PairedCounts(paired=100, a_successes=50, b_successes=50, b_only=b_only,
                                 a_only=a_only)
    assert counts.mcnemar_p == pytest.approx(p, abs=5e-5)


def test_logs_of_other_episodes_are_refused(tmp_path: Path) -> None:
    a = write_log(tmp_path / "a", {"abc": "11"})
    other = tmp_path / "other"
    with appending(other / "episodes.jsonl", HEADER, []) as append:
        append(dataclasses.replace(result("abc", 0, True), env_seed=7))  # another start
        append(result("abc", 1, True))
    done = run(a, other)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "paired_episodes.py: error: 1 of the 2 shared episodes had another start or "
        "conditioning demo in B (first: 'abc' episode 0): not the same episodes; evaluate "
        "both with the same --seed"]
    disjoint = write_log(tmp_path / "disjoint", {"acb": "11"})
    done = run(a, disjoint)
    assert done.returncode == 2 and "no episode in common" in done.stderr


def test_a_file_that_is_not_an_episode_log_is_refused(tmp_path: Path) -> None:
    a = write_log(tmp_path / "a", {"abc": "11"})
    (tmp_path / "metrics.csv").write_text("step,loss\n1,0.5\n")
    done = run(a, tmp_path / "metrics.csv")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"paired_episodes.py: error: {tmp_path / 'metrics.csv'} is not an imitate episode log "
        "(its first line is not the header imitate writes)"]
    missing = run(a, tmp_path / "nowhere")
    assert missing.returncode == 2 and "nowhere/episodes.jsonl" not in missing.stderr
    assert f"{tmp_path / 'nowhere'} is missing" in missing.stderr
