"""The Ray backend (``imitate.workers``): the same dataset bytes and the same evaluation episodes
as the process pool, a retried job after its worker died, and the errors of a bad backend or a
missing Ray. One local 2-CPU Ray instance serves the module; commands join it by address."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_cli

from imitate.cli import main
from imitate.data import GenerateConfig, generate
from imitate.evaluation import EvalConfig, evaluate
from imitate.workers import RAY_INSTALL, job_runner

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """The address of a local Ray instance with 2 CPUs, running while this module's tests do."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def shard_digests(dataset: Path) -> list[tuple[str, str]]:
    manifest = json.loads((dataset / "manifest.json").read_text())
    return [(shard["file"], shard["sha256"]) for shard in manifest["shards"]]


def test_generate_on_ray_writes_the_process_pools_bytes_and_resumes_its_dataset(
        tmp_path: Path, ray_address: str) -> None:
    options = {"tasks": ("ab", "abc"), "per_task": 3, "shard_size": 2, "seed": 5, "workers": 2}
    generate(GenerateConfig(out=tmp_path / "process", **options))
    on_ray = run_cli("demos", "generate", "--out", str(tmp_path / "ray"), "--tasks", "ab,abc",
                     "--per-task", "3", "--shard-size", "2", "--seed", "5", "--workers", "2",
                     "--backend", "ray", "--ray-address", ray_address, "--quiet")
    assert on_ray.returncode == 0, on_ray.stderr
    assert "made 6 (4 shards" in on_ray.stdout and "workers: 2 (ray)" in on_ray.stdout
    digests = shard_digests(tmp_path / "ray")
    assert len(digests) == 4 and digests == shard_digests(tmp_path / "process")
    # Not part of the dataset's identity: the other backend resumes (here: keeps) the dataset.
    again = generate(GenerateConfig(out=tmp_path / "process", backend="ray",
                                    ray_address=ray_address, **options))
    assert again.kept_demos == 6 and again.new_demos == 0


def without_seconds(episode: dict[str, Any]) -> dict[str, Any]:
    """An episode's record less its timings (seconds: they differ from run to run)."""
    return {key: value for key, value in episode.items() if not key.endswith("seconds")}


def test_eval_on_ray_runs_the_process_backends_episodes(tiny_policy: Path, tmp_path: Path,
                                                        ray_address: str) -> None:
    config = EvalConfig(checkpoint=tiny_policy, tasks=("ab",), episodes_per_task=2, ensemble=1,
                        workers=1, fused=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as 'imitate eval' runs the policy in its own process
    try:
        here = [without_seconds(json.loads(json.dumps(dataclasses.asdict(result))))
                for result in evaluate(config)]
    finally:
        torch.set_num_threads(threads)
    on_ray = run_cli("eval", "--checkpoint", str(tiny_policy), "--tasks", "ab",
                     "--episodes-per-task", "2", "--ensemble", "1", "--workers", "2",
                     "--compile", "off", "--backend", "ray", "--ray-address", ray_address,
                     "--out", str(tmp_path / "ray"), "--quiet")
    assert on_ray.returncode == 0, on_ray.stderr
    report = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert len(here) == 2 and [without_seconds(e) for e in report["episodes"]] == here
    # the options land in config.json, for 'imitate eval --config'
    options = json.loads((tmp_path / "ray" / "config.json").read_text())
    assert options["backend"] == "ray" and options["ray_address"] == ray_address


def test_a_job_whose_ray_worker_died_runs_again(tmp_path: Path, ray_address: str) -> None:
    marker = tmp_path / "died"

    # local functions: Ray pickles them by value (this test module is not importable there)
    def _marked_setup(marker: str, pooled: bool) -> Path:
        return Path(marker)

    def _die_once(marker: Path, job: int) -> tuple[int, int]:
        """The job and its square; job 1, finding no marker, writes it and kills its worker."""
        if job == 1 and not marker.exists():
            marker.write_text("died once")
            os._exit(1)
        return job, job * job

    with job_runner(2, _marked_setup, (str(marker),), _die_once, lambda _: None,
                    backend="ray", ray_address=ray_address) as run:
        results = sorted(run(range(4)))
    assert marker.read_text() == "died once"
    assert results == [(0, 0), (1, 1), (2, 4), (3, 9)]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """``imitate ARGV`` in this process, expected to fail with exit 2: its stderr."""
    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    assert code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ("demos", "generate", "--out", "never", "--tasks", "ab", "--per-task", "1"),
    ("eval", "--checkpoint", "never.pt", "--tasks", "ab", "--out", "never"),
])
def test_a_bad_backend_or_a_ray_address_without_ray_is_one_line(
        command: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    error = run_main(capsys, *command, "--backend", "spark")
    assert error.startswith("imitate: error: argument --backend: invalid choice: 'spark'")
    assert error.count("\n") == 1
    assert run_main(capsys, *command, "--ray-address", "auto") == (
        "imitate: error: --ray-address auto needs --backend ray\n")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert run_main(capsys, *command, "--backend", "ray") == (
        f"imitate: error: --backend ray needs Ray: {RAY_INSTALL}\n")
    assert not (tmp_path / "never").exists()


def test_a_bad_backend_in_an_eval_config_file_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"checkpoint": "never.pt", "backend": "spark"}))
    error = run_main(capsys, "eval", "--config", str(config))
    assert error.startswith("imitate: error:") and error.count("\n") == 1
    assert "backend" in error and "spark" in error


@pytest.mark.parametrize("make", [
    lambda: GenerateConfig(out=Path("never"), per_task=1, tasks=("ab",), backend="spark"),
    lambda: EvalConfig(checkpoint=Path("never.pt"), backend="spark"),
])
def test_configs_refuse_an_unknown_backend(make: Any) -> None:
    with pytest.raises(ValueError, match="unknown --backend 'spark'; choose process or ray"):
        make()


@pytest.mark.parametrize(("address", "words"), [
    ("127.0.0.1:1", "no Ray head answers there"),  # nothing listens: ray.init would retry
    ("10.0.0.5", "expected HOST:PORT"),
])
def test_a_ray_address_nobody_answers_is_one_line_not_a_hang(
        address: str, words: str, tmp_path: Path) -> None:
    done = run_cli("demos", "generate", "--out", str(tmp_path / "d"), "--tasks", "ab",
                   "--per-task", "1", "--backend", "ray", "--ray-address", address, "--quiet")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and address in lines[0], done.stderr
