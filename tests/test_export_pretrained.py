"""``scripts/export_pretrained.py``: a run and its reports shipped into a package folder, and the
runs and reports it refuses to ship."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from imitate.checkpoint import load_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "export_pretrained.py"


def export(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, check=False)


def refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("export_pretrained.py: error:"), done.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def run(tiny_policy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny run with one cheap evaluation report, ``eval-ab``."""
    folder = tmp_path_factory.mktemp("ship") / "run"
    shutil.copytree(tiny_policy.parent, folder)
    done = run_cli("eval", "--checkpoint", str(folder / "policy.pt"), "--tasks", "ab",
                   "--episodes-per-task", "1", "--ensemble", "1", "--compile", "off",
                   "--out", str(folder / "eval-ab"), "--quiet")
    assert done.returncode == 0, done.stderr
    return folder


def test_a_run_ships_with_its_config_and_reports(run: Path, tmp_path: Path) -> None:
    dest = tmp_path / "pretrained"
    (dest / "eval-old").mkdir(parents=True)  # a report of the policy being replaced
    (dest / "eval-old" / "report.md").write_text("old")
    done = export(run, "--report", run / "eval-ab", "--dest", dest)
    assert done.returncode == 0, done.stderr
    shipped, trained = load_checkpoint(dest / "policy.pt"), load_checkpoint(run / "policy.pt")
    assert shipped.step == trained.step
    assert shipped.training == trained.training
    for name, value in trained.policy.state_dict().items():
        assert shipped.policy.state_dict()[name].equal(value), name
    # Stripped of the optimiser and RNG state: smaller than the run's checkpoint.
    assert (dest / "policy.pt").stat().st_size < (run / "policy.pt").stat().st_size
    assert (dest / "config.json").read_bytes() == (run / "config.json").read_bytes()
    for name in ("report.md", "report.json", "summary.csv", "config.json"):
        assert (dest / "eval-ab" / name).read_bytes() == (run / "eval-ab" / name).read_bytes()
    assert not (dest / "eval-ab" / "episodes.csv").exists()
    assert not (dest / "eval-old").exists()
    assert "removed" in done.stdout and "eval-old" in done.stdout


def test_a_report_of_another_step_is_refused(run: Path, tmp_path: Path) -> None:
    report = tmp_path / "eval-ab"
    shutil.copytree(run / "eval-ab", report)
    data = json.loads((report / "report.json").read_text())
    data["checkpoint"]["step"] += 100
    (report / "report.json").write_text(json.dumps(data))
    refused(export(run, "--report", report, "--dest", tmp_path / "dest"), "evaluated step")
    assert not (tmp_path / "dest").exists()  # nothing written


def test_a_report_of_another_checkpoint_file_is_refused(run: Path, tmp_path: Path) -> None:
    report = tmp_path / "eval-ab"
    shutil.copytree(run / "eval-ab", report)
    log = report / "episodes.jsonl"
    header, *records = log.read_text().splitlines()
    fields = json.loads(header)
    fields["checkpoint_sha256"] = "0" * 64
    log.write_text("\n".join([json.dumps(fields), *records]) + "\n")
    refused(export(run, "--report", report, "--dest", tmp_path / "dest"), "another policy.pt")


def test_incomplete_runs_and_reports_are_refused(run: Path, tmp_path: Path) -> None:
    refused(export(tmp_path / "nothing", "--dest", tmp_path / "dest"), "checkpoint not found")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copyfile(run / "policy.pt", bare / "policy.pt")
    refused(export(bare, "--dest", tmp_path / "dest"), "config.json is missing")
    report = tmp_path / "eval-ab"
    shutil.copytree(run / "eval-ab", report)
    (report / "summary.csv").unlink()
    refused(export(run, "--report", report, "--dest", tmp_path / "dest"), "summary.csv")
    refused(export(run, "--report", run, "--dest", tmp_path / "dest"), "eval-")
    assert not (tmp_path / "dest").exists()
