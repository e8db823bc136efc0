"""``imitate train --config FILE`` and ``imitate eval --config FILE``: the config.json a run or an
evaluation writes reads back to the same options, flags on the command line win, the shipped
configs are the pretrained policy's, and every bad file fails with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_loggers import cli_error

from envs.expert import DEFAULT_NOISE_STD
from imitate.checkpoint import PRETRAINED_DIR, is_pretrained, load_checkpoint
from imitate.cli import build_parser, main
from imitate.config_files import OPTIONS_ATTRIBUTE, apply_config_file, write_config_file
from imitate.train_commands import train_config
from imitate.train_config import TrainConfig


def parsed(*argv: str) -> object:
    """``imitate ARGV`` parsed, its ``--config`` applied."""
    return apply_config_file(build_parser().parse_args(list(argv)))


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_a_run_config_trains_again_with_the_flags_given_on_top(
        tiny_policy: Path, tmp_path: Path) -> None:
    first = json.loads((tiny_policy.parent / "config.json").read_text())
    again = tmp_path / "again"
    # --demos comes from the file; --steps and --seed from the command line.
    assert main(["train", "--config", str(tiny_policy.parent / "config.json"), "--out",
                 str(again), "--steps", "2", "--seed", "5"]) == 0
    effective = json.loads((again / "config.json").read_text())
    assert effective == {**first, "out": str(again), "steps": 2, "seed": 5}
    assert load_checkpoint(again / "policy.pt").training["config"] == effective


def test_command_line_beats_file_beats_defaults(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    file = write_json(tmp_path / "c.json", {"demos": "demos/x", "out": "runs/x", "steps": 7,
                                            "lr": 0.01, "logger": "tensorboard", "quiet": True,
                                            "threads": None, "context_form": "0.5"})
    config = train_config(build_parser().parse_args(["train", "--config", str(file),
                                                     "--steps", "9"]))
    defaults = TrainConfig(demos=Path("demos/x"), out=Path("runs/x"))
    assert config == TrainConfig(**{**defaults.__dict__, "steps": 9, "lr": 0.01, "quiet": True,
                                    "logger": ("jsonl", "tensorboard"), "context_form": "0.5"})
    assert config.demos == Path("demos/x")  # a path as written: relative to the current folder
    for flags, loggers in ((["--logger", "wandb"], ("jsonl", "wandb")),
                           (["--logger", "wandb", "--logger", "tensorboard"],
                            ("jsonl", "tensorboard", "wandb"))):
        args = build_parser().parse_args(["train", "--config", str(file), *flags])
        assert train_config(args).logger == loggers  # a flag replaces the file's list
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "command line > FILE > built-in defaults" in " ".join(capsys.readouterr().out.split())


def test_the_shipped_config_is_the_pretrained_policy_training_config() -> None:
    config = train_config(build_parser().parse_args(["train", "--config", "pretrained"]))
    saved = load_checkpoint("pretrained")
    # The run trained in two legs: its first --steps placed the DAgger rounds (config.json, which
    # --config reads), then --resume --steps 40000 took it on (what the checkpoint records).
    recorded = saved.training["config"]
    legs = {"steps": (20000, 40000), "resume": (False, True)}
    assert {key: (config.to_json()[key], recorded[key]) for key in legs} == legs
    assert {key: config.to_json()[key] for key in recorded if key not in legs} == {
        key: value for key, value in recorded.items() if key not in legs}
    assert config.policy_config() == saved.policy.config  # context form, dropout rule included
    assert str(config.demos) == saved.training["dataset"]
    assert json.loads((PRETRAINED_DIR / "config.json").read_text()) == config.to_json()
    assert (config.algo, config.conditioning, config.dagger_rounds, config.context_form) == (
        "dagger", "final", 6, "module2")
    # The --demos and --out of a reproduction replace the recorded folders.
    args = build_parser().parse_args(["train", "--config", "pretrained", "--demos", "d",
                                      "--out", "o"])
    assert train_config(args) == TrainConfig(**{**config.__dict__, "demos": Path("d"),
                                                "out": Path("o")})


def options(args: object) -> dict[str, object]:
    """The option values of an applied namespace (without ``--config`` itself)."""
    return {k: v for k, v in vars(args).items() if k not in ("config", OPTIONS_ATTRIBUTE)}


def test_an_eval_config_file_reads_back_to_the_same_options(tmp_path: Path) -> None:
    flags = ["--checkpoint", "pretrained", "--tasks", "ab,abc", "--episodes-per-task", "1",
             "--ensemble", "1", "--workers", "1", "--no-expert", "--compile", "off", "--quiet",
             "--out", str(tmp_path / "report")]
    args = parsed("eval", *flags)
    file = tmp_path / "config.json"
    write_config_file(file, args, exclude=("restart",))
    assert json.loads(file.read_text()) == {
        "checkpoint": "pretrained", "split": "test", "tasks": "ab,abc", "episodes_per_task": 1,
        "ensemble": 1, "workers": 1, "seed": 0, "no_expert": True, "videos": 0, "labels": False,
        "out": str(tmp_path / "report"), "compile": "off", "quiet": True,
        "backend": "process", "ray_address": None}
    again = parsed("eval", "--config", str(file), "--seed", "3")
    assert is_pretrained(again.checkpoint)  # the word round-trips, not a resolved path
    assert options(again) == {**options(args), "seed": 3}
    # Paths are kept as typed; an unset --out stays unset (the default folder again).
    args = parsed("eval", "--checkpoint", "runs/x/policy.pt")
    write_config_file(file, args)
    again = parsed("eval", "--config", str(file))
    assert again.checkpoint == Path("runs/x/policy.pt") and again.out is None
    assert options(again) == options(args)


@pytest.mark.parametrize("name", ["eval-test", "eval-train"])
def test_the_shipped_eval_configs_are_the_ones_of_their_reports(name: str) -> None:
    args = parsed("eval", "--config", str(PRETRAINED_DIR / name / "config.json"))
    report = json.loads((PRETRAINED_DIR / name / "report.json").read_text())["config"]
    # a whole split: no --tasks, and the report records none
    assert {"checkpoint": str(args.checkpoint), "split": args.split, "tasks": args.tasks,
            "episodes_per_task": args.episodes_per_task, "ensemble": args.ensemble,
            "workers": args.workers, "seed": args.seed, "expert": not args.no_expert,
            "demo_noise": DEFAULT_NOISE_STD, "videos": args.videos,
            "labels": args.labels} == report
    assert (args.split, args.tasks) == (name.removeprefix("eval-"), None)
    # imitate eval wrote each report into its default folder, beside the checkpoint
    assert (args.checkpoint, args.out) == (Path("runs/ref2-final-dagger/policy.pt"), None)


@pytest.mark.parametrize(("content", "words"), [
    ("{not json", ["is not valid JSON"]),
    ("[1, 2]", ["holds a JSON array", "not an object"]),
    ('{"stepz": 3}', ["unknown key 'stepz'", "did you mean 'steps'?"]),
    ('{"steps": "many"}', ["steps must be an integer", '"many"']),
    ('{"steps": true}', ["steps must be an integer", "true"]),
    ('{"steps": 2.5}', ["steps must be an integer"]),
    ('{"steps": null}', ["steps must be an integer", "null"]),
    ('{"lr": "fast"}', ["lr must be a number"]),
    ('{"resume": "yes"}', ["resume must be true or false"]),
    ('{"demos": 3}', ["demos must be a string"]),
    ('{"algo": "ppo"}', ["algo must be one of bc, dagger", '"ppo"']),
    ('{"logger": [1]}', ["logger must be a list of names or a comma-separated string"]),
    ('{"steps": 0}', ["--steps must be a positive integer"]),  # TrainConfig's own checks
])
def test_a_bad_train_config_file_fails_with_one_line(
        content: str, words: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "config.json"
    file.write_text(content)
    line = cli_error(capsys, "train", "--config", str(file), "--demos", "d", "--out",
                     str(tmp_path / "run"))
    for word in words:
        assert word in line
    if "--steps" not in line:
        assert str(file) in line
    assert not (tmp_path / "run").exists()


def test_missing_config_files_and_options_fail_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    absent = tmp_path / "absent.json"
    assert "no such file" in cli_error(capsys, "train", "--config", str(absent))
    assert "no such file" in cli_error(capsys, "eval", "--config", str(absent))
    file = write_json(tmp_path / "c.json", {"demos": "d", "steps": 3})
    line = cli_error(capsys, "train", "--config", str(file))
    assert "--out is required, on the command line or in --config FILE" in line
    line = cli_error(capsys, "train")
    assert "--demos and --out are required" in line
    line = cli_error(capsys, "eval", "--tasks", "ab")
    assert "--checkpoint is required" in line
    file = write_json(tmp_path / "e.json", {"checkpoint": "pretrained", "episodes_per_task": 1.5})
    line = cli_error(capsys, "eval", "--config", str(file))
    assert "episodes_per_task must be an integer, got 1.5" in line
