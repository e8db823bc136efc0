"""Fault injection: a full disk never leaves a broken file in place of a good one, a busy folder
is never written by a second writer, and each says so in one line."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import one_line_error, run_cli

from imitate.eval_commands import EVAL_LOCK_NAME
from imitate.files import folder_lock
from imitate.train_config import LOCK_NAME as TRAIN_LOCK


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder`` (root only; the test is skipped elsewhere)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs."""
    with small_disk(tmp_path / "disk", "256k") as mount:
        yield mount


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs."""
    with small_disk(tmp_path / "disk", "64m") as mount:
        yield mount


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the filler, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "filler"}


def assert_full_disk_error(done: subprocess.CompletedProcess[str], folder: Path) -> None:
    """Exit 2 with one error line: could not write a file under ``folder``, disk full (after
    any warnings the command logs on the way, such as a shard it makes again)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert all(line.startswith("WARNING ") for line in lines[:-1]), done.stderr
    lines = lines[-1:]
    assert lines[0].startswith(f"imitate: error: could not write {folder}/"), lines[0]
    assert "No space left on device" in lines[0] and "is unchanged" in lines[0], lines[0]


def fill(folder: Path, leave: int) -> None:
    """Fill the disk holding ``folder`` until ``leave`` bytes are free."""
    free = shutil.disk_usage(folder).free
    (folder / "filler").write_bytes(b"\0" * max(0, free - leave))


def render(out: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("render", "--expert", "--task", "ab", "--out", str(out), "--every", "8",
                   "--size", "96")


def test_render_on_a_full_disk_fails_in_one_line_and_keeps_the_earlier_video(
        tiny_disk: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.mp4"
    done = render(good)
    assert done.returncode == 0, done.stderr
    video = tiny_disk / "v.mp4"
    shutil.copyfile(good, video)
    before = video.read_bytes()
    fill(tiny_disk, leave=len(before) // 4)  # room for the header, not the whole video
    done = render(video)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [f"imitate: error: could not write {video}: no space left on device; any "
                     "earlier v.mp4 is unchanged"], done.stderr
    assert "outcome" not in done.stdout
    assert video.read_bytes() == before
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler", "v.mp4"]  # no temporary


def train(demos: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("train", "--demos", str(demos), "--out", str(out), "--steps", "2",
                   "--tasks-per-batch", "2", "--pairs-per-task", "4", "--quiet", *extra)


def test_a_second_training_run_on_a_busy_folder_is_refused_and_changes_nothing(
        tiny_demos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(tiny_demos, run, "--seed", "0").returncode == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if not p.name.startswith(".")}
    with folder_lock(run, TRAIN_LOCK, "training run"):  # a first run, still writing
        done = train(tiny_demos, run, "--seed", "1", "--resume", "--steps", "4")
    one_line_error(done, str(run), "in use by another training run", f"pid {os.getpid()}")
    assert {p.name: p.read_bytes() for p in run.iterdir() if not p.name.startswith(".")} == before
    # The holder is gone (its flock died with it): the lock file left behind is no obstacle.
    done = train(tiny_demos, run, "--seed", "0", "--resume", "--steps", "4")
    assert done.returncode == 0, done.stderr


def test_an_evaluation_into_a_busy_report_folder_is_refused(tiny_policy: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "report"
    with folder_lock(out, EVAL_LOCK_NAME, "evaluation"):
        done = run_cli("eval", "--checkpoint", str(tiny_policy), "--tasks", "ab",
                       "--episodes-per-task", "1", "--ensemble", "1", "--workers", "1",
                       "--no-expert", "--compile", "off", "--out", str(out), "--quiet")
    one_line_error(done, str(out), "in use by another evaluation")
    assert not (out / "report.json").exists()


def test_resume_of_a_folder_without_a_run_is_an_error(tiny_demos: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    one_line_error(train(tiny_demos, missing, "--resume"), str(missing),
                   "holds no run to resume", "drop --resume")
    assert not missing.exists()


def test_every_command_accepts_quiet() -> None:
    import argparse

    from imitate.cli import build_parser

    def commands(parser: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, object]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    nested = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
                    if nested:
                        yield from commands(sub, f"{prefix}{name} ")
                    else:
                        yield f"{prefix}{name}", sub

    found = dict(commands(build_parser(), ""))
    assert {"tasks", "demos generate", "demos verify", "demos info", "train", "eval", "render",
            "attention", "quickstart"} <= set(found)
    assert [name for name, sub in found.items()
            if "--quiet" not in sub._option_string_actions] == []


def test_a_checkpoint_whose_weights_changed_is_refused(tiny_policy: Path, tmp_path: Path) -> None:
    import torch

    payload = torch.load(tiny_policy, weights_only=True)
    assert len(payload["model_state_sha256"]) == 64
    name = sorted(payload["model_state"])[0]
    payload["model_state"][name].view(-1)[0] += 1e-3  # a flipped weight that still unpickles
    damaged = tmp_path / "policy.pt"
    torch.save(payload, damaged)
    one_line_error(run_cli("eval", "--checkpoint", str(damaged), "--tasks", "ab"), str(damaged),
                   "is damaged", "checksum")


def test_a_checkpoint_holding_code_is_refused_without_advice_to_unpickle_it(
        tmp_path: Path) -> None:
    import collections

    import torch

    bad = tmp_path / "policy.pt"
    torch.save({"format": "imitate-policy", "odd": collections.OrderedDict(a=object)}, bad)
    done = run_cli("eval", "--checkpoint", str(bad), "--tasks", "ab")
    one_line_error(done, str(bad), "not a readable checkpoint", "never loads")
    assert "weights_only" not in done.stderr


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_training_run_saves_its_step_and_resumes(
        tiny_demos: Path, tmp_path: Path, number: signal.Signals) -> None:
    import sys
    import time

    import torch

    run = tmp_path / "run"
    command = [sys.executable, "-m", "imitate.cli", "train", "--demos", str(tiny_demos), "--out",
               str(run), "--steps", "100000", "--tasks-per-batch", "2", "--pairs-per-task", "4",
               "--log-every", "1", "--checkpoint-every", "100000", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(number)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith(f"imitate: interrupted: {number.name} at step ")
    assert line.endswith(f"checkpoint saved in {run / 'policy.pt'}; continue with --resume")
    step = int(line.split(" at step ")[1].split(":")[0])
    assert step >= 3
    assert torch.load(run / "policy.pt", weights_only=True)["step"] == step
    done = run_cli("train", "--demos", str(tiny_demos), "--out", str(run), "--steps",
                   str(step + 2), "--tasks-per-batch", "2", "--pairs-per-task", "4", "--log-every",
                   "1", "--checkpoint-every", "100000", "--resume", "--quiet")
    assert done.returncode == 0, done.stderr
    assert torch.load(run / "policy.pt", weights_only=True)["step"] == step + 2


def copy_dataset(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "demos"
    shutil.copytree(source, target)
    return target


def test_demos_info_reports_a_missing_or_cut_shard_and_exits_non_zero(tiny_demos: Path,
                                                                      tmp_path: Path) -> None:
    assert run_cli("demos", "info", str(tiny_demos)).returncode == 0
    damaged = copy_dataset(tiny_demos, tmp_path)
    shards = sorted((damaged / "shards").iterdir())
    shards[0].write_bytes(shards[0].read_bytes()[:-10])
    done = run_cli("demos", "info", str(damaged))
    one_line_error(done, str(damaged), "is damaged", f"shards/{shards[0].name}",
                   "imitate demos verify")
    shards[0].unlink()
    one_line_error(run_cli("demos", "info", str(damaged)), "missing")


@pytest.mark.parametrize(("field", "value", "words"), [
    ("bytes", "x", ("shards[0].bytes", "an integer >= 0", "'x'")),
    ("num_demos", -1, ("shards[0].num_demos", "an integer >= 0")),
    ("steps", 2.5, ("shards[0].steps", "an integer >= 0")),
    ("task_index", True, ("shards[0].task_index", "an integer >= 0")),
    ("shard_index", "0", ("shards[0].shard_index", "an integer >= 0")),
    ("first_demo", None, ("shards[0].first_demo", "an integer >= 0")),
    ("attempts", [], ("shards[0].attempts", "an integer >= 0")),
    ("file", "../../etc/passwd", ("shards[0].file", "inside shards/")),
    ("file", 7, ("shards[0].file", "a string")),
    ("sha256", "abc", ("shards[0].sha256", "64 hexadecimal digits")),
    ("failed", "none", ("shards[0].failed", "a list of demo indices")),
    ("task", None, ("shards[0].task", "a string")),
    ("shards", {}, ("shards must be a list",)),
    ("complete", "yes", ("complete must be true or false",)),
])
def test_every_malformed_manifest_field_is_one_line_naming_it(
        tiny_demos: Path, tmp_path: Path, field: str, value: object,
        words: tuple[str, ...]) -> None:
    """Every reader goes through ``load_manifest``: checked here in-process for each field, and
    through three commands for one field below."""
    from imitate.data.format import DatasetError, load_manifest

    damaged = damage_manifest(tiny_demos, tmp_path, field, value)
    with pytest.raises(DatasetError) as caught:
        load_manifest(damaged)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(damaged / "manifest.json"))
    assert all(word in message for word in words), message


def test_a_malformed_manifest_field_stops_info_verify_and_train_in_one_line(
        tiny_demos: Path, tmp_path: Path) -> None:
    damaged = damage_manifest(tiny_demos, tmp_path, "bytes", "x")
    for command in (("demos", "info", str(damaged)), ("demos", "verify", str(damaged)),
                    ("train", "--demos", str(damaged), "--out", str(tmp_path / "run"),
                     "--steps", "1", "--quiet")):
        one_line_error(run_cli(*command), str(damaged / "manifest.json"), "shards[0].bytes",
                       "an integer >= 0", "'x'")
    assert not (tmp_path / "run").exists()


def damage_manifest(source: Path, tmp_path: Path, field: str, value: object) -> Path:
    """A copy of the dataset whose manifest has ``field`` (top level, or of the first shard
    entry) set to ``value``."""
    damaged = copy_dataset(source, tmp_path)
    manifest = json.loads((damaged / "manifest.json").read_text())
    if field in ("shards", "complete"):
        manifest[field] = value
    else:
        manifest["shards"][0][field] = value
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    return damaged


def test_a_missing_manifest_field_and_a_file_for_a_folder_are_one_line(tiny_demos: Path,
                                                                       tmp_path: Path) -> None:
    damaged = copy_dataset(tiny_demos, tmp_path)
    manifest = json.loads((damaged / "manifest.json").read_text())
    del manifest["shards"][1]["sha256"]
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    one_line_error(run_cli("demos", "info", str(damaged)), "shards[1] has no 'sha256'")
    one_line_error(run_cli("train", "--demos", str(damaged / "manifest.json"), "--out",
                           str(tmp_path / "run")), "is a file, not a dataset folder")


def test_training_on_a_full_disk_keeps_the_earlier_checkpoint(tiny_demos: Path,
                                                              disk: Path) -> None:
    run = disk / "run"
    assert train(tiny_demos, run).returncode == 0
    fill(disk, leave=16 * 1024)
    before = contents(disk)
    done = train(tiny_demos, run, "--resume", "--steps", "4")
    assert_full_disk_error(done, run)
    assert contents(disk) == before


def test_an_evaluation_on_a_full_disk_keeps_the_earlier_report_whole(tiny_policy: Path,
                                                                     disk: Path) -> None:
    out = disk / "report"
    command = ("eval", "--checkpoint", str(tiny_policy), "--tasks", "ab", "--episodes-per-task",
               "1", "--ensemble", "1", "--workers", "1", "--no-expert", "--compile", "off",
               "--out", str(out), "--quiet")
    assert run_cli(*command).returncode == 0
    fill(disk, leave=24 * 1024)  # room for some report files, not all
    before = contents(disk)
    assert_full_disk_error(run_cli(*command, "--seed", "1", "--restart"), out)
    after = contents(disk)
    for name in ("report/config.json", "report/episodes.jsonl"):  # the new evaluation's own
        after.pop(name, None), before.pop(name, None)
    assert after == before


def test_generating_demos_on_a_full_disk_keeps_the_earlier_shards(disk: Path) -> None:
    out = disk / "demos"
    command = ("demos", "generate", "--out", str(out), "--tasks", "ab", "--seed", "3",
               "--per-task", "6", "--shard-size", "2", "--quiet")
    assert run_cli(*command).returncode == 0
    shards = sorted((out / "shards").iterdir())
    shards[-1].unlink()  # a shard to make again, onto a full disk
    fill(disk, leave=8 * 1024)
    before = contents(disk)
    assert_full_disk_error(run_cli(*command), out)
    assert contents(disk) == before


def test_training_on_a_dataset_still_being_generated_says_so(tiny_demos: Path,
                                                            tmp_path: Path) -> None:
    from imitate.data.format import GENERATE_LOCK

    with folder_lock(tiny_demos, GENERATE_LOCK, "demos generate run"):
        done = train(tiny_demos, tmp_path / "run")
    one_line_error(done, str(tiny_demos), "still being written by 'demos generate'",
                   f"pid {os.getpid()}", "wait for it to finish")
    assert "corrupt" not in done.stderr


def test_an_operating_system_error_names_its_file_without_an_errno(tiny_demos: Path,
                                                                   tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = train(tiny_demos, blocker / "run")
    one_line_error(done, str(blocker / "run"), "Not a directory")
    assert "[Errno" not in done.stderr


def default_sigint() -> None:
    """In the child before exec: SIGINT back to its default, so that Python turns it into
    KeyboardInterrupt even when this suite runs in a background job (``make test &``), whose
    shell starts every command with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_an_interrupted_evaluation_leaves_the_earlier_report_as_it_was(
        tiny_policy: Path, tmp_path: Path, number: signal.Signals) -> None:
    import sys
    import time

    from imitate.episode_log import read_log
    from imitate.evaluation import LOG_NAME, EpisodeResult, EvalConfig, log_header

    out = tmp_path / "report"
    # A 3-stage task: 750-step episodes, so 40 of them outlast the 3 s below on an idle machine.
    command = ["eval", "--checkpoint", str(tiny_policy), "--tasks", "abcd", "--ensemble", "1",
               "--no-expert", "--compile", "off", "--out", str(out), "--quiet"]
    assert run_cli(*command, "--episodes-per-task", "1", "--workers", "1").returncode == 0
    before = contents(out)
    # Another evaluation into that folder: --restart discards the first one's episode log.
    process = subprocess.Popen([sys.executable, "-m", "imitate.cli", *command,
                                "--episodes-per-task", "40", "--workers", "2", "--seed", "1",
                                "--restart"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
    log = out / LOG_NAME  # rewritten with its header (under the lock) before any episode runs
    deadline = time.monotonic() + 60
    while '"episodes_per_task": 40' not in log.read_text().split("\n")[0]:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    time.sleep(3)  # episodes under way
    assert process.poll() is None, "the evaluation ended before it could be interrupted"
    process.send_signal(number)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == (-signal.SIGKILL if number == signal.SIGKILL else 130), stderr
    if number != signal.SIGKILL:  # one line, the workers stopped without a traceback
        reason = ": SIGTERM" if number == signal.SIGTERM else ""
        assert stderr.strip() == (f"imitate: interrupted{reason}; the finished episodes are kept "
                                  "in the episode log: the same command runs the rest")
    after = contents(out)
    # Not the report: the lock's holder text, the options file and the episode log of the last
    # writer.
    for name in (EVAL_LOCK_NAME, "config.json", LOG_NAME):
        after.pop(name, None), before.pop(name, None)
    assert after == before
    # The log: the interrupted evaluation's header, then whole records of finished episodes only
    # (SIGKILL may have cut a last line short: dropped on reading).
    config = EvalConfig(checkpoint=tiny_policy, tasks=("abcd",), episodes_per_task=40,
                        ensemble=1, seed=1, expert=False)
    logged = read_log(log, log_header(config, tiny_policy.read_bytes()), EpisodeResult)
    assert len({(r.task, r.episode) for r in logged}) == len(logged) < 40
    # No stale lock: the next evaluation runs (another one again: --restart).
    assert run_cli(*command, "--episodes-per-task", "1", "--workers", "1",
                   "--restart").returncode == 0



@pytest.mark.parametrize("ctrl_c", [False, True], ids=["SIGTERM to the command",
                                                      "Ctrl-C to its process group"])
def test_interrupted_demo_generation_stops_its_workers_in_one_line_and_resumes(
        tmp_path: Path, ctrl_c: bool) -> None:
    """SIGTERM (as a job scheduler or a session's end sends it) stops ``demos generate`` as
    Ctrl-C does: the pool's workers stop without a traceback each, the command says in one line
    that the same command goes on, and it does."""
    import sys
    import time

    out = tmp_path / "demos"
    command = ["demos", "generate", "--out", str(out), "--tasks", "abc,abcd", "--per-task", "40",
               "--shard-size", "2", "--workers", "2", "--quiet"]
    process = subprocess.Popen([sys.executable, "-m", "imitate.cli", *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint, start_new_session=True)
    def listed_shards() -> int:  # shards the manifest lists: the ones a resume keeps
        try:
            return len(json.loads((out / "manifest.json").read_text())["shards"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return 0

    deadline = time.monotonic() + 120
    while listed_shards() == 0:  # both workers are recording
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    assert process.poll() is None, "the generation ended before it could be interrupted"
    if ctrl_c:
        os.killpg(process.pid, signal.SIGINT)  # what a terminal sends to the foreground job
    else:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    reason = "" if ctrl_c else ": SIGTERM"
    assert stderr.strip() == (f"imitate: interrupted{reason}; the finished shards are kept: "
                              "the same command makes the rest")
    resumed = run_cli(*command)
    assert resumed.returncode == 0, resumed.stderr
    assert "kept 0 demos" not in resumed.stdout and "80 demos of 2 tasks" in resumed.stdout
    assert run_cli("demos", "verify", str(out)).returncode == 0

def test_a_malformed_run_config_is_named(tiny_demos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(tiny_demos, run).returncode == 0
    (run / "config.json").write_text("{not json")
    before = contents(run)
    one_line_error(train(tiny_demos, run, "--resume", "--steps", "4"), str(run / "config.json"),
                   "is not valid JSON", "another --out")
    assert contents(run) == before


@pytest.mark.parametrize(("name", "value"), [("steps", "x"), ("seed", True), ("lr", "fast"),
                                             ("tasks_per_batch", 2.5), ("conditioning", 3)])
def test_a_run_config_field_of_the_wrong_type_is_named(tmp_path: Path, name: str,
                                                       value: object) -> None:
    from imitate.train_config import read_run_config

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"steps": 4, "seed": 0, name: value}))
    with pytest.raises(ValueError) as caught:
        read_run_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {name} must be") and repr(value) in message, message
    path.write_text(json.dumps({"steps": 4, "seed": 0, "lr": 1, "compile": False}))
    assert read_run_config(path)["lr"] == 1  # an int for a float, 0.7's bool compile: fine


def test_a_run_config_field_of_the_wrong_type_stops_a_resume(tiny_demos: Path,
                                                             tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(tiny_demos, run).returncode == 0
    saved = json.loads((run / "config.json").read_text())
    saved["steps"] = "x"
    (run / "config.json").write_text(json.dumps(saved))
    before = contents(run)
    one_line_error(train(tiny_demos, run, "--resume", "--steps", "4"), str(run / "config.json"),
                   "steps must be", "'x'")
    assert contents(run) == before


def test_two_training_processes_on_one_folder_one_is_refused(tiny_demos: Path,
                                                             tmp_path: Path) -> None:
    import sys
    import time

    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "imitate.cli", "train", "--demos", str(tiny_demos), "--out",
         str(run), "--steps", "100000", "--tasks-per-batch", "2", "--pairs-per-task", "4",
         "--seed", "0", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = run / TRAIN_LOCK
        deadline = time.monotonic() + 60
        while "pid" not in (lock.read_text() if lock.exists() else ""):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.1)
        second = train(tiny_demos, run, "--seed", "1")
        one_line_error(second, str(run), "in use by another training run", f"pid {first.pid}")
        assert json.loads((run / "config.json").read_text())["seed"] == 0
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert torch_step(run / "policy.pt") > 0  # the first run saved its own work on SIGINT
    assert json.loads((run / "config.json").read_text())["seed"] == 0


def torch_step(path: Path) -> int:
    import torch

    return int(torch.load(path, weights_only=True)["step"])
