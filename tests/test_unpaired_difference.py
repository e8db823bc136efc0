"""``imitate.report.difference_interval`` against Newcombe's published values, and
``scripts/unpaired_difference.py`` on the shipped policy's real reports and on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imitate.report import difference_interval

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "unpaired_difference.py"
SHIPPED = ROOT / "imitate" / "pretrained"


@pytest.mark.parametrize(("a", "b", "expected"), [
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10; his p1 is our B.
    ((48, 80), (56, 70), (0.0524, 0.3339)),
    ((3, 10), (9, 10), (0.1705, 0.8090)),
    ((2, 7), (6, 7), (0.0582, 0.8062)),
    ((0, 29), (5, 56), (-0.0381, 0.1926)),
    ((0, 20), (0, 10), (-0.1611, 0.2775)),
    ((0, 20), (10, 10), (0.6791, 1.0000)),
])
def test_difference_interval_matches_newcombes_table(a: tuple[int, int], b: tuple[int, int],
                                                      expected: tuple[float, float]) -> None:
    low, high = difference_interval(*a, *b)
    assert (round(low, 4), round(high, 4)) == expected


def test_difference_interval_is_antisymmetric() -> None:
    low, high = difference_interval(69, 140, 96, 140)
    assert difference_interval(96, 140, 69, 140) == pytest.approx((-high, -low))


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True)


def row(output: str, label: str) -> list[str]:
    """The cells of the table row whose first cell is ``label``."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{output}")


def test_counts_against_the_shipped_test_report() -> None:
    counts = "2:127/140 4:69/140, 5:62/140 6:44/140 7:18/140 8:12/160"
    done = run(f"full={counts}", f"shipped={SHIPPED}")  # a run folder: eval-test/report.json
    assert done.returncode == 0, done.stderr
    cells = row(done.stdout, "4")
    assert cells[1] == "49.3 [41.1, 57.5] (69/140)"  # the README's full-conditioning cell
    assert cells[2] == "68.6 [60.5, 75.7] (96/140)"  # the shipped report's
    low, high = difference_interval(69, 140, 96, 140)
    assert cells[3:] == ["+19.3", f"[{100 * low:+.1f}, {100 * high:+.1f}]", "yes"]
    assert row(done.stdout, "6")[5] == "no"  # 44/140 against 38/140
    pooled = row(done.stdout, "all")  # same episodes per stage count on both sides
    assert pooled[1].endswith("(332/860)") and pooled[2].endswith("(398/860)")


def test_a_report_file_and_the_train_split() -> None:
    done = run("--split", "train", "few=1:80/90 3:200/240",
               f"shipped={SHIPPED / 'eval-train' / 'report.json'}")
    assert done.returncode == 0, done.stderr
    assert row(done.stdout, "1")[2] == "100.0 [95.9, 100.0] (90/90)"
    assert row(done.stdout, "3")[2].endswith("(224/240)")
    assert "| 2 |" not in done.stdout  # only stage counts both sides have


def test_no_pooled_row_when_the_designs_differ() -> None:
    done = run("a=2:10/20 4:5/20", "b=2:15/20 4:9/40")
    assert done.returncode == 0, done.stderr
    assert "| all |" not in done.stdout
    assert row(done.stdout, "4")[2].endswith("(9/40)")


@pytest.mark.parametrize(("a", "b", "message"), [
    ("a=4:69", "b=4:70/140", "is not STAGES:SUCCESSES/EPISODES"),
    ("a=4:150/140", "b=4:70/140", "successes must be at most the episodes"),
    ("a=4:1/0", "b=4:70/140", "successes must be at most the episodes"),
    ("a=4:1/10 4:2/10", "b=4:70/140", "stage count 4 is given twice"),
    ("4:69/140", "b=4:70/140", "is not NAME=SOURCE"),
    ("a=2:10/20", "b=4:70/140", "no stage count in common"),
    ("a=2:10/20", "b=no/such/run", "no report.json"),
])
def test_bad_sides_are_refused_in_one_line(a: str, b: str, message: str) -> None:
    done = run(a, b)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_file_that_is_not_a_report_is_refused(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps({"rows": []}))
    done = run("a=2:10/20", f"b={tmp_path}")
    assert done.returncode == 2 and "is not an imitate eval report" in done.stderr


def test_a_report_without_the_splits_rows_is_refused(tmp_path: Path) -> None:
    shutil.copy(SHIPPED / "eval-train" / "report.json", tmp_path / "report.json")
    done = run("a=2:10/20", f"b={tmp_path}")  # a training-task report read for --split test
    assert done.returncode == 2 and "has no unseen test-split rows" in done.stderr
