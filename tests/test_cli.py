"""The ``imitate`` command line, run as a real process."""

from __future__ import annotations

import subprocess
import sys

import envs


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imitate.cli", *args], capture_output=True,
                          text=True, check=False)


def test_tasks_lists_the_test_split_with_stage_counts() -> None:
    done = run_cli("tasks", "--split", "test")
    assert done.returncode == 0, done.stderr
    suite = envs.load_suite()
    rows = [line for line in done.stdout.splitlines() if line.strip().split()[1:2] == ["test"]]
    assert len(rows) == len(suite.test) == 43
    assert [row.split()[-1] for row in rows if len(row.split()) == 6] == [
        t.layout for t in suite.test if len(t.towers) == 1
    ]
    assert "test tasks by stage count: 2: 7, 4: 7, 5: 7, 6: 7, 7: 7, 8: 8" in done.stdout
    assert done.stderr == ""


def test_tasks_all_lists_both_splits() -> None:
    done = run_cli("tasks")
    assert done.returncode == 0
    assert "task suite v1: 140 train, 43 test" in done.stdout
    assert "train tasks by stage count: 1: 20, 2: 20" in done.stdout


def test_bad_split_is_a_one_line_error() -> None:
    done = run_cli("tasks", "--split", "validation")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imitate: error:") and "validation" in lines[0]


def test_a_closed_pipe_is_not_an_error() -> None:
    """``imitate tasks | head -1``: the reader goes away; no error message, exit 0."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "imitate.cli", "tasks"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before the first line is written
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert process.wait() == 0, stderr
    assert "error" not in stderr
