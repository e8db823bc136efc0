"""Shared fixtures: a tiny real demo dataset and a policy briefly trained on it (session scope,
made once through the real CLI), and helpers for running the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: Every HOLDOUT_EVERY-th demo of each task is held out when training on ``tiny_demos``.
HOLDOUT_EVERY = 3


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``imitate ARGS`` in a fresh interpreter (in folder ``cwd``), output captured."""
    return subprocess.run([sys.executable, "-m", "imitate.cli", *args], capture_output=True,
                          text=True, check=False, cwd=cwd)


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """The command failed with exit 2 and one ``imitate: error:`` line naming ``words``."""
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("imitate: error:"), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="session")
def tiny_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 expert demos of each of 'ab' and 'ba' (training seed stream, root seed 3)."""
    out = tmp_path_factory.mktemp("tiny") / "demos"
    done = run_cli("demos", "generate", "--out", str(out), "--tasks", "ab,ba", "--per-task", "6",
                   "--seed", "3", "--quiet")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def tiny_policy(tiny_demos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint trained for a few BC steps on ``tiny_demos``."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    done = run_cli("train", "--demos", str(tiny_demos), "--out", str(out), "--steps", "4",
                   "--tasks-per-batch", "2", "--pairs-per-task", "8", "--quiet")
    assert done.returncode == 0, done.stderr
    return out / "policy.pt"
