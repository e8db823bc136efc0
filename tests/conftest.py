"""Shared fixtures: a tiny real demo dataset and a policy briefly trained on it (session scope,
made once through the real CLI), and helpers for running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# One torch thread per test process, and per command a test runs (they inherit it), unless the
# caller set another: pytest-xdist already runs a process per core, and torch's threads beside a
# busy core wait on each other. Measured on a 2-core machine beside a background job (`python -m
# pytest tests/test_train.py`): 761 s with torch's default of a thread per core, 289 s with one.
# A test that needs more threads sets them itself.
os.environ.setdefault("OMP_NUM_THREADS", "1")

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
