"""``scripts/fit_gap.py``: a policy's loss on its training demos against the demos its run held
out, on a real tiny run, and its refusals."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HOLDOUT_EVERY, run_cli

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fit_gap.py"


def run_script(*args: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True)


def refusal(*args: Path | str) -> str:
    """The script's one stderr line, after checking that it refused (exit 2)."""
    done = run_script(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("fit_gap.py: error:"), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def held_out_run(tiny_demos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few BC steps on ``tiny_demos`` (6 demos per task) holding out 1 demo in 3."""
    out = tmp_path_factory.mktemp("fit_gap") / "run"
    done = run_cli("train", "--demos", str(tiny_demos), "--out", str(out), "--steps", "4",
                   "--tasks-per-batch", "2", "--pairs-per-task", "8",
                   "--holdout-every", str(HOLDOUT_EVERY), "--quiet")
    assert done.returncode == 0, done.stderr
    return out / "policy.pt"


def rows(output: str) -> dict[str, tuple[int, float, float]]:
    """Per set of pairs: batches, mean loss and mean accuracy, read from the printed table."""
    found = re.findall(r"^(training demos|held-out demos)\s+(\d+)\s+([\d.]+) ± [\d.]+\s+"
                       r"([\d.]+) ± [\d.]+$", output, re.MULTILINE)
    return {name: (int(b), float(loss), float(acc)) for name, b, loss, acc in found}


def test_scores_training_and_held_out_demos_reproducibly(held_out_run: Path) -> None:
    first = run_script(held_out_run, "--batches", "3")
    assert first.returncode == 0, first.stderr
    assert "2 tasks, 4 training and 2 held-out demos per task (1 in 3 held out)" in first.stdout
    assert "batches of 2 tasks x 8 pairs" in first.stdout
    scores = rows(first.stdout)
    assert set(scores) == {"training demos", "held-out demos"}
    for batches, loss, accuracy in scores.values():
        assert batches == 3 and loss > 0 and 0 <= accuracy <= 1
    gap = float(re.search(r"gap \(held-out minus training loss\): (-?[\d.]+)",
                          first.stdout).group(1))
    expected = scores["held-out demos"][1] - scores["training demos"][1]
    assert gap == pytest.approx(expected, abs=2e-3)
    assert run_script(held_out_run, "--batches", "3").stdout == first.stdout  # same seed
    other = run_script(held_out_run, "--batches", "3", "--seed", "1")
    assert rows(other.stdout) != scores  # other pairs and dropout


def test_refuses_a_run_that_held_nothing_out(tiny_policy: Path) -> None:
    # tiny_policy trained with the default --holdout-every 20 on 6 demos per task
    assert "held no demo out" in refusal(tiny_policy)


def test_refuses_another_runs_dataset(held_out_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    done = run_cli("demos", "generate", "--out", str(other), "--tasks", "abc", "--per-task", "2",
                   "--seed", "3", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "other tasks than the run trained on" in refusal(held_out_run, "--demos", other)


def test_refuses_bad_files_and_counts(held_out_run: Path, tmp_path: Path) -> None:
    not_a_checkpoint = tmp_path / "policy.pt"
    not_a_checkpoint.write_text("not a checkpoint")
    assert str(not_a_checkpoint) in refusal(not_a_checkpoint)
    assert "no such dataset" in refusal(held_out_run, "--demos", tmp_path / "missing")
    assert "--batches must be at least 1" in refusal(held_out_run, "--batches", "0")
