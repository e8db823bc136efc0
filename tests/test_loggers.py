"""``imitate train --logger tensorboard|wandb``: the rows of ``metrics.jsonl`` again in TensorBoard
event files and in an offline W&B run, each read back with its own tool's reader; resumed runs;
one-line errors for an unknown logger and for a logger whose package is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_train import small_config

from imitate.cli import main
from imitate.train_config import CONFIG_NAME, TrainConfig
from imitate.training import train


def metrics_rows(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def tensorboard_rows(run: Path) -> dict[int, dict[str, float]]:
    """Scalars of ``run/tensorboard`` by step, as TensorBoard shows them (purges applied);
    asserts that no tag has a step twice."""
    board = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    board.Reload()
    rows: dict[int, dict[str, float]] = {}
    for tag in board.Tags()["scalars"]:
        steps = [event.step for event in board.Scalars(tag)]
        assert len(steps) == len(set(steps)), (tag, steps)
        for event in board.Scalars(tag):
            rows.setdefault(event.step, {})[tag] = event.value
    return rows


def wandb_records(offline_run: Path) -> list[dict]:
    """The records of an offline W&B run, as ``wandb leet inspect --json`` prints them."""
    command = shutil.which("wandb", path=str(Path(sys.executable).parent)) or "wandb"
    done = subprocess.run([command, "leet", "inspect", "--json", str(offline_run)],
                          capture_output=True, text=True, check=True, timeout=60)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_tensorboard_holds_the_jsonl_rows_and_a_resumed_run_appends_without_duplicates(
        tiny_demos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    settings = {"steps": 2, "checkpoint_every": 2, "logger": ("tensorboard",), "algo": "dagger",
                "dagger_rounds": 1, "dagger_rollouts": 1}  # the round is collected at step 1
    train(small_config(tiny_demos, run, **settings))
    shutil.copy(run / "policy.pt", tmp_path / "step2.pt")
    train(small_config(tiny_demos, run, **{**settings, "steps": 4, "resume": True}))
    # As if the run had died after logging steps 3 and 4 but before saving their checkpoint:
    # the resumed run restarts at step 2 and logs steps 3 and 4 again (other samples/s).
    shutil.copy(tmp_path / "step2.pt", run / "policy.pt")
    train(small_config(tiny_demos, run, **{**settings, "steps": 5, "resume": True}))

    rows = metrics_rows(run)
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5]
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 3
    board = tensorboard_rows(run)
    assert sorted(board) == [1, 2, 3, 4, 5]
    for row in rows:
        expected = {key: value for key, value in row.items() if key != "step"}
        assert board[row["step"]] == pytest.approx(expected, rel=1e-6), row["step"]
    assert "dagger_rounds" not in rows[0]  # DAgger figures once the round is collected
    assert rows[1]["dagger_rounds"] == 1 and rows[1]["dagger_beta"] == 0.5
    assert rows[1]["dagger_rollouts"] == 1 and rows[1]["dagger_labelled_steps"] > 0
    assert rows[1]["dagger_success"] in (0.0, 1.0)
    assert {"loss", "val_loss", "train_acc_all", "samples_per_s", "cpu_s"} <= set(board[5])


def test_wandb_writes_an_offline_run_and_a_run_resumes_with_another_logger(
        tiny_demos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    train(small_config(tiny_demos, run, steps=2))  # jsonl only
    assert json.loads((run / CONFIG_NAME).read_text())["logger"] == ["jsonl"]
    # The logger is not a training parameter: the resumed run may add one.
    train(small_config(tiny_demos, run, steps=4, resume=True, logger=("wandb",),
                       wandb_project="imitate-test"))
    assert not (run / "tensorboard").exists()
    [offline] = (run / "wandb").glob("offline-run-*")
    records = wandb_records(offline)
    [start] = [record["run"] for record in records if record["type"] == "run"]
    assert start["project"] == "imitate-test" and start["display_name"] == "run"
    config = start["config"]["update"]
    assert config["start_step"] == 2 and config["steps"] == 4
    assert config["logger"] == ["jsonl", "wandb"] and config["seed"] == 0
    history = {record["history"]["step"]["num"]: record["history"]["item"]
               for record in records if record["type"] == "history"}
    rows = metrics_rows(run)
    assert sorted(history) == [3, 4] and [row["step"] for row in rows] == [1, 2, 3, 4]
    for row in rows[2:]:
        logged = {key: history[row["step"]][key] for key in row if key != "step"}
        assert logged == pytest.approx({k: v for k, v in row.items() if k != "step"}, rel=1e-12)
    assert [record["exit"]["exit_code"] for record in records if record["type"] == "exit"] == [0]


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``imitate ARGV`` in this process: exit 2 with one ``imitate: error:`` line."""
    assert main(list(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imitate: error:"), lines
    return lines[0]


@pytest.mark.parametrize("package", ["tensorboard", "wandb"])
def test_a_logger_whose_package_is_missing_names_the_extra_and_writes_nothing(
        package: str, tiny_demos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # what an environment without it imports
    for name in [name for name in sys.modules if name.startswith("torch.utils.tensorboard")]:
        monkeypatch.delitem(sys.modules, name)  # imported again: it imports tensorboard
    out = tmp_path / "run"
    line = cli_error(capsys, "train", "--demos", str(tiny_demos), "--out", str(out),
                     "--steps", "1", "--quiet", "--logger", f"jsonl,{package}")
    assert f"--logger {package}" in line and f"pip install 'imitate-oneshot[{package}]'" in line
    assert not out.exists()


def test_logger_choices_are_checked_and_listed_in_order(
        tiny_demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("train", "--demos", str(tiny_demos), "--out", str(tmp_path / "run"), "--quiet")
    line = cli_error(capsys, *base, "--logger", "tensorboard,mlflow")
    assert "unknown --logger 'mlflow'" in line and "jsonl, tensorboard, wandb" in line
    line = cli_error(capsys, *base, "--wandb-project", "a/b")
    assert "--wandb-project" in line
    assert not (tmp_path / "run").exists()
    config = TrainConfig(demos=tiny_demos, out=tmp_path, logger="wandb, tensorboard,wandb")
    assert config.logger == ("jsonl", "tensorboard", "wandb")
    assert TrainConfig(demos=tiny_demos, out=tmp_path).logger == ("jsonl",)
