"""Resumable evaluation: the episode log (``episodes.jsonl``) of ``imitate eval``. An interrupted
evaluation's rerun runs only the missing episodes and reports as an uninterrupted run does; a log
it cannot resume is refused in one line. Real policy, real PyBullet, real files."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import one_line_error, run_cli

from imitate.episode_log import EpisodeLogError, appending, read_log
from imitate.evaluation import (
    LOG_NAME,
    EpisodeResult,
    EvalConfig,
    evaluate,
    log_header,
    logged_results,
)

#: Columns of episodes.csv that hold measured time, which differs between runs.
SECONDS = ("policy_seconds", "env_seconds", "demo_seconds", "expert_seconds")


def eval_command(checkpoint: Path, out: Path, *extra: str) -> tuple[str, ...]:
    """2 episodes of 'ab', ensemble 1, in-process, eager: the cheapest evaluation."""
    return ("eval", "--checkpoint", str(checkpoint), "--tasks", "ab", "--episodes-per-task", "2",
            "--ensemble", "1", "--workers", "1", "--compile", "off", "--out", str(out),
            "--quiet", *extra)


def tiny_config(checkpoint: Path, **overrides: object) -> EvalConfig:
    """``eval_command``'s options as an EvalConfig."""
    settings: dict = {"tasks": ("ab",), "episodes_per_task": 2, "ensemble": 1, "workers": 1,
                      "fused": False, **overrides}
    return EvalConfig(checkpoint=checkpoint, **settings)


@pytest.fixture(scope="module")
def finished(tiny_policy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report folder of an uninterrupted ``eval_command``."""
    out = tmp_path_factory.mktemp("resume") / "report"
    done = run_cli(*eval_command(tiny_policy, out))
    assert done.returncode == 0, done.stderr
    assert "resuming" not in done.stdout
    return out


def copy_report(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "report"
    shutil.copytree(finished, out)
    return out


def csv_rows(path: Path, drop: tuple[str, ...] = ()) -> list[dict[str, str]]:
    with path.open() as handle:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(handle)]


def test_a_resumed_evaluation_runs_only_the_missing_episodes_and_reports_the_same(
        tiny_policy: Path, finished: Path, tmp_path: Path) -> None:
    out = copy_report(finished, tmp_path)
    header, first, second = (out / LOG_NAME).read_text().splitlines()
    (out / LOG_NAME).write_text(f"{header}\n{first}\n{second[:40]}")  # cut short mid-line
    done = run_cli(*eval_command(tiny_policy, out))
    assert done.returncode == 0, done.stderr
    assert "resuming: 1 of 2 episodes already done" in done.stdout
    assert "2 episodes (1 run now, 1 from episodes.jsonl)" in done.stdout
    assert "dropped its last line, cut short" in done.stderr
    assert (out / "summary.csv").read_bytes() == (finished / "summary.csv").read_bytes()
    ran, logged = csv_rows(out / "episodes.csv"), csv_rows(finished / "episodes.csv")
    assert ran[0] == logged[0]  # read back from the log, seconds and all
    assert csv_rows(out / "episodes.csv", SECONDS) == csv_rows(finished / "episodes.csv", SECONDS)
    lines = (out / LOG_NAME).read_text().splitlines()
    assert lines[:2] == [header, first] and len(lines) == 3
    timing = json.loads((out / "report.json").read_text())["timing"]
    assert (timing["episodes_run"], timing["episodes_from_log"]) == (1, 1)
    assert "this invocation" in timing["note"]
    # Finished: the same command only writes the report again, from the log alone.
    before = (out / "episodes.csv").read_bytes()
    done = run_cli(*eval_command(tiny_policy, out))
    assert done.returncode == 0, done.stderr
    assert "resuming: 2 of 2 episodes already done" in done.stdout
    assert (out / "episodes.csv").read_bytes() == before
    assert json.loads((out / "report.json").read_text())["timing"]["episodes_run"] == 0


def test_a_log_of_other_options_is_refused_in_one_line(tiny_policy: Path, finished: Path,
                                                       tmp_path: Path) -> None:
    out = copy_report(finished, tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "config.json"}
    done = run_cli(*eval_command(tiny_policy, out, "--ensemble", "2"))
    one_line_error(done, str(out / LOG_NAME),
                   "logs another evaluation (ensemble: 1 in the log, 2 now)",
                   "--out with another folder", "--restart to discard it")
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "config.json"}
    after.pop(".eval.lock"), before.pop(".eval.lock")  # holder text of the last writer
    assert after == before


def test_restart_discards_the_log_and_runs_every_episode(tiny_policy: Path, finished: Path,
                                                         tmp_path: Path) -> None:
    out = copy_report(finished, tmp_path)
    (out / LOG_NAME).write_text("not a log\n")
    done = run_cli(*eval_command(tiny_policy, out, "--restart", "--episodes-per-task", "1",
                                 "--no-expert"))
    assert done.returncode == 0, done.stderr
    assert "resuming" not in done.stdout
    config = tiny_config(tiny_policy, episodes_per_task=1, expert=False)
    logged = read_log(out / LOG_NAME, log_header(config, tiny_policy.read_bytes()),
                      EpisodeResult)
    assert [(r.task, r.episode, r.expert_success) for r in logged] == [("ab", 0, None)]


def test_a_log_of_another_checkpoint_is_refused(tiny_policy: Path, finished: Path,
                                                tmp_path: Path) -> None:
    import torch

    payload = torch.load(tiny_policy, weights_only=True)
    payload["step"] += 1  # a valid checkpoint of other bytes
    other = tmp_path / "policy.pt"
    torch.save(payload, other)
    log = tmp_path / LOG_NAME
    shutil.copyfile(finished / LOG_NAME, log)
    sha256 = r"\(checkpoint_sha256: \"[0-9a-f]{20}\.\.\. in the log, \"[0-9a-f]{20}\.\.\. now\)"
    with pytest.raises(EpisodeLogError, match=sha256) as caught:
        evaluate(tiny_config(other), log=log)
    assert "--restart to discard it" in str(caught.value)


@pytest.mark.parametrize(("text", "words"), [
    ("", "is not an imitate episode log"),
    ("episode 0: success\n", "is not an imitate episode log"),
    ('{"task": "ab"}\n', "is not an imitate episode log"),
    ('{"format": "imitate-episode-log"}\n', "(format_version: absent in the log, 1 now)"),
    (None, "line 2 is not an episode record"),
])
def test_a_file_that_is_not_a_log_of_this_evaluation_is_refused(
        tiny_policy: Path, finished: Path, tmp_path: Path, text: str | None, words: str) -> None:
    log = tmp_path / LOG_NAME
    if text is None:  # a damaged record before the last line: not an interruption
        header, first, second = (finished / LOG_NAME).read_text().splitlines()
        text = f"{header}\n{first[:-5]}\n{second}\n"
    log.write_text(text)
    with pytest.raises(EpisodeLogError) as caught:
        evaluate(tiny_config(tiny_policy), log=log)
    message = str(caught.value)
    assert message.startswith(str(log)) and words in message and "\n" not in message, message
    assert log.read_text() == text  # refused, not rewritten


def a_result(episode: int, video: Path | None) -> EpisodeResult:
    return EpisodeResult(split="other", task="ab", num_stages=1, episode=episode, env_seed=7,
                         demo_env_seed=8, demo_steps=50, success=True, failure=None, stage=1,
                         steps=60, expert_success=None, expert_failure=None, policy_seconds=0.5,
                         env_seconds=0.25, demo_seconds=0.125, expert_seconds=0.0,
                         video=None if video is None else str(video))


def test_an_episode_whose_video_is_not_on_disk_runs_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kept, lost = tmp_path / "ab-ep000.mp4", tmp_path / "ab-ep001.mp4"
    kept.write_bytes(b"mp4")
    results = [a_result(0, kept), a_result(1, lost), a_result(2, None)]
    header = {"seed": 0}
    with appending(tmp_path / LOG_NAME, header, results[:1]) as append:
        append(results[1])
        append(results[2])
    with caplog.at_level(logging.WARNING):
        found = logged_results(tmp_path / LOG_NAME, header)
    assert found == {("ab", 0): results[0], ("ab", 2): results[2]}
    assert f"video {lost} is missing; episode 1 of 'ab' runs again" in caplog.text


def test_a_line_that_cannot_be_written_is_one_line_and_the_log_stays_readable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from imitate.files import WriteError

    log, header = tmp_path / LOG_NAME, {"seed": 0}
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    with appending(log, header, []) as append:
        append(a_result(0, None))
        resource.setrlimit(resource.RLIMIT_FSIZE, (log.stat().st_size + 40, hard))
        try:  # a full disk, as far as this file is concerned (EFBIG; Python ignores SIGXFSZ)
            with pytest.raises(WriteError) as caught:
                append(a_result(1, None))
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(caught.value)
    assert message.startswith(f"could not write {log}: File too large"), message
    assert message.endswith("the episodes logged before stay, and the same command resumes "
                            "after them")
    with caplog.at_level(logging.WARNING):
        assert read_log(log, header, EpisodeResult) == [a_result(0, None)]
    assert "dropped its last line, cut short by an interruption (40 characters)" in caplog.text


def test_the_log_header_names_what_fixes_the_episodes(tiny_policy: Path) -> None:
    config = tiny_config(tiny_policy)
    header = log_header(config, b"bytes")
    assert header["checkpoint_sha256"] == hashlib.sha256(b"bytes").hexdigest()
    assert (header["tasks"], header["split"]) == (["ab"], None)
    for change in ({"ensemble": 2}, {"seed": 1}, {"expert": False}, {"noise": 0.0},
                   {"episodes_per_task": 3}, {"tasks": ("ba",)}, {"tasks": None}):
        assert log_header(replace(config, **change), b"bytes") != header, change
    assert log_header(replace(config, workers=3, fused=True), b"bytes") == header


@pytest.mark.slow
def test_an_interrupted_evaluation_resumes_where_it_stopped(tiny_policy: Path,
                                                            tmp_path: Path) -> None:
    """A real SIGINT mid-run; the same command then completes the missing episodes only."""
    command = ("eval", "--checkpoint", str(tiny_policy), "--tasks", "ab", "--episodes-per-task",
               "4", "--ensemble", "1", "--workers", "2", "--compile", "off", "--videos", "1",
               "--quiet")
    whole = tmp_path / "whole"
    assert run_cli(*command, "--out", str(whole)).returncode == 0
    out = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "imitate.cli", *command, "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = out / LOG_NAME
    deadline = time.monotonic() + 300
    while (log.read_text().count("\n") if log.exists() else 0) < 2:  # header + 1 episode
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and stderr.strip().endswith(
        "imitate: interrupted; the finished episodes are kept in the episode log: the same "
        "command runs the rest"), stderr
    assert not (out / "report.json").exists()
    header, *records = log.read_text().splitlines()
    assert 1 <= len(records) < 4
    done = run_cli(*command, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"resuming: {len(records)} of 4 episodes already done" in done.stdout
    assert (out / "summary.csv").read_bytes() == (whole / "summary.csv").read_bytes()
    drop = (*SECONDS, "video")  # the videos lie in each report's own folder
    assert csv_rows(out / "episodes.csv", drop) == csv_rows(whole / "episodes.csv", drop)
    videos = sorted(p.name for p in (out / "videos").iterdir())
    assert videos == sorted(p.name for p in (whole / "videos").iterdir()) and len(videos) == 1
    assert (out / LOG_NAME).read_text().splitlines()[0] == header
