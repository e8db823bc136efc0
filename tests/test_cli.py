"""The ``imitate`` command line, run as a real process."""

from __future__ import annotations

import subprocess
import sys

from conftest import one_line_error

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
    assert [row.split()[-1] for row in rows if len(row.split()) == 7] == [
        t.layout for t in suite.test if len(t.towers) == 1
    ]
    assert [row.split()[-2] for row in rows if len(row.split()) == 7] == [
        str(t.task_class) for t in suite.test if len(t.towers) == 1
    ]
    assert "test tasks by stage count: 2: 7, 4: 7, 5: 7, 6: 7, 7: 7, 8: 8" in done.stdout
    assert done.stderr == ""


def test_tasks_all_lists_both_splits() -> None:
    done = run_cli("tasks")
    assert done.returncode == 0
    assert "task suite v2: 140 train, 43 test; one task per class" in done.stdout
    counts = "1: 9, 2: 8, 3: 24, 4: 25, 5: 25, 6: 26, 7: 23"
    assert f"train tasks by stage count: {counts}" in done.stdout
    old = run_cli("tasks", "--suite-version", "1")
    assert "task suite v1: 140 train, 43 test; several tasks share a class" in old.stdout


def test_seen_by_says_which_classes_a_checkpoint_trained_on(tiny_policy) -> None:
    """tiny_policy trained on 'ab' and 'ba': 'ba' and any 2-cube tower are seen, 'ab c' not."""
    done = run_cli("tasks", "--seen-by", str(tiny_policy), "ba", "ab c", "c ab")
    assert done.returncode == 0, done.stderr
    rows = {line.split("  ")[0].strip(): line.split() for line in done.stdout.splitlines()[2:]}
    assert rows["ba"][-3:] == ["seen", "ab,", "ba"]
    assert rows["ab c"][-2:] == ["unseen", "-"] and rows["c ab"][-2:] == ["unseen", "-"]
    assert "trained on 2 tasks of 1 classes" in done.stdout
    done = run_cli("tasks", "--seen-by", str(tiny_policy), "--split", "test")
    assert done.returncode == 0, done.stderr
    labels = [line.split()[-2] for line in done.stdout.splitlines()[2:]]
    assert labels == ["unseen"] * 43  # no v2 test class is a 2-cube tower


def test_bad_tasks_input_is_a_one_line_error(tmp_path) -> None:
    one_line_error(run_cli("tasks", "ab"), "--seen-by")
    one_line_error(run_cli("tasks", "--suite-version", "3"), "unknown task suite version 3")
    one_line_error(run_cli("tasks", "--seen-by", str(tmp_path / "none.pt"), "ab"),
                   "checkpoint not found")
    one_line_error(run_cli("tasks", "--seen-by", "pretrained", "ab", "xyz"), "'xyz'")


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
