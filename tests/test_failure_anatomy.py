"""``scripts/failure_anatomy.py``: the last state of a failed episode, classified, and a replay
of a real failed evaluation episode that ends as its log says."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from conftest import run_cli

from envs.tasks import TABLE, parse_task

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "failure_anatomy.py"
_spec = importlib.util.spec_from_file_location("failure_anatomy", SCRIPT)
anatomy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(anatomy)


def run_script(*args: Path | str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True)


def refusal(*args: Path | str) -> list[str]:
    """The script's stderr lines, after checking that it refused (exit 2)."""
    done = run_script(*args)
    assert done.returncode == 2, done.stderr
    return done.stderr.strip().splitlines()


def test_each_last_state_falls_in_its_class() -> None:
    task = parse_task("abc")  # a on b on c: b goes on c first, then a on b
    a, b, c = 0, 1, 2
    scattered = [TABLE, TABLE, TABLE]
    half_built = [TABLE, c, TABLE]
    assert anatomy.classify(task, scattered, a) == "premature pick"  # b is not on c yet
    assert anatomy.classify(task, half_built, a) == "holding, destination ready"
    assert anatomy.classify(task, scattered, b) == "holding, destination ready"  # c: the base
    assert anatomy.classify(task, half_built, c) == "holding a base"
    assert anatomy.classify(task, half_built, -1) == "empty hand"
    # b on c but c itself on a: b is not in its final place
    assert not anatomy.in_final_place(task, [TABLE, c, a], b)
    assert anatomy.in_final_place(task, half_built, b)


def test_a_failed_episode_replays_as_logged(tiny_policy: Path, tmp_path: Path) -> None:
    report = tmp_path / "eval"
    done = run_cli("eval", "--checkpoint", str(tiny_policy), "--tasks", "abc",
                   "--episodes-per-task", "1", "--ensemble", "1", "--no-expert", "--workers",
                   "1", "--quiet", "--out", str(report))
    assert done.returncode == 0, done.stderr
    episode = json.loads((report / "episodes.jsonl").read_text().splitlines()[1])
    assert not episode["success"]  # 4 training steps on 'ab', 'ba' cannot stack 'abc'
    out = tmp_path / "anatomy.json"
    done = run_script(report, "--per-stages", "1", "--json", out)
    assert done.returncode == 0, done.stderr
    [found] = json.loads(out.read_text())
    assert found["replayed_as_logged"] and found["stage"] == episode["stage"]
    assert found["class"] in anatomy.CLASSES
    assert 0 <= found["satisfied_any_order"] <= 2
    assert "| 2 | 1 |" in done.stdout  # the summary row of the 2-stage failures
    # While an evaluation runs its folder has no config.json yet: --checkpoint is then needed.
    (report / "config.json").unlink()
    assert refusal(report) == [
        f"failure_anatomy.py: error: {report / 'config.json'} is missing (an evaluation still "
        "running writes it at its end); give --checkpoint"]
    # Other weights than the log's would not replay its episodes: refused.
    (tmp_path / "other.pt").write_bytes(tiny_policy.read_bytes() + b"\0")
    assert refusal(report, "--checkpoint", tmp_path / "other.pt") == [
        f"failure_anatomy.py: error: {tmp_path / 'other.pt'} is not the checkpoint that "
        f"{report / 'episodes.jsonl'} evaluated (its sha256 differs from the log's "
        "checkpoint_sha256)"]
    assert "checkpoint not found" in refusal(report, "--checkpoint", tmp_path / "none.pt")[0]
    done = run_script(report, "--checkpoint", tiny_policy)
    assert done.returncode == 0 and "| 2 | 1 |" in done.stdout, done.stderr


def test_a_folder_without_an_episode_log_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path) == [
        f"failure_anatomy.py: error: {tmp_path / 'episodes.jsonl'} is missing (is {tmp_path} "
        "an imitate eval folder?)"]


def test_a_file_that_is_not_an_episode_log_is_refused(tmp_path: Path) -> None:
    (tmp_path / "episodes.jsonl").write_text("step,loss\n1,0.5\n")
    assert refusal(tmp_path, "--checkpoint", tmp_path / "unused.pt") == [
        f"failure_anatomy.py: error: {tmp_path / 'episodes.jsonl'} is not an imitate episode "
        "log (its first line is not the header imitate writes)"]
