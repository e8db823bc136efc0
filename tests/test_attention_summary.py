"""``scripts/attention_summary.py``: the fixed queries' weights over many ``imitate attention``
episodes of one task, grouped by outcome. Real episodes, real files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "attention_summary.py"


def summarise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          check=False)


@pytest.fixture(scope="module")
def episodes(tiny_policy: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Episodes 0 and 1 of 'ab' (E = 1) as ``imitate attention`` writes them."""
    root = tmp_path_factory.mktemp("attention-summary")
    folders = []
    for episode in (0, 1):
        out = root / str(episode)
        done = run_cli("attention", "--checkpoint", str(tiny_policy), "--task", "ab",
                       "--episode", str(episode), "--ensemble", "1", "--out", str(out),
                       "--quiet")
        assert done.returncode == 0, done.stderr
        folders.append(out)
    return folders


def test_a_row_per_episode_and_a_row_per_outcome(episodes: list[Path], tmp_path: Path) -> None:
    folders = [tmp_path / folder.name for folder in episodes]
    for source, copy in zip(episodes, folders, strict=True):
        shutil.copytree(source, copy)
    # Episode 1's queries put all their weight on B for its first 30 steps: it starts on B.
    with np.load(folders[1] / "attention.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["fixed"][:30] = np.eye(2, dtype=arrays["fixed"].dtype)[1]
    np.savez(folders[1] / "attention.npz", **arrays)
    done = summarise(*map(str, reversed(folders)))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "'ab': 2 episodes; its first stage is A ON B"
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in folders]
    rows = lines[2:4]  # in episode order, whatever the order of the folders
    for row, summary in zip(rows, summaries, strict=True):
        cells = row.split()
        assert cells[:4] == [str(summary["episode"]), summary["outcome"],
                             f"{summary['stage']}/{summary['num_stages']}", str(summary["steps"])]
        weights = [float(cells[i]) for i in (6, 8)]  # A w, B w: a distribution over the blocks
        assert sum(weights) == pytest.approx(1.0, abs=0.011)
    assert rows[1].split()[4] == "B"
    groups = lines[4:]
    assert sum(int(line.split("(")[1].split(")")[0]) for line in groups) == 2
    assert all(line.split(" (")[0] in ("success", "no stage built", "other failure")
               for line in groups)


def test_bad_input_gives_one_line_errors(episodes: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(episodes[0], other)
    summary = json.loads((other / "summary.json").read_text())
    (other / "summary.json").write_text(json.dumps({**summary, "task": "ba"}))
    for args, words in (([str(episodes[0]), str(other)], "2 tasks"),
                        ([str(tmp_path)], "summary.json is missing"),
                        ([str(episodes[0]), "--first-steps", "0"], "--first-steps")):
        done = summarise(*args)
        assert done.returncode == 2, done.stdout
        assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr, done.stderr
