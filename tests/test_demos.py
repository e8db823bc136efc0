"""Demo datasets: generation, resume after kill -9, verify, info, corruption, the pair loader.

Tiny sizes (2- and 3-cube tasks, 3 demos each, shards of 2) and real processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from envs.expert import DEFAULT_NOISE_STD
from imitate.data import (
    CorruptShardError,
    DatasetError,
    DemoDataset,
    PairSampler,
    Stream,
    append_shard,
    create_aggregate,
    demo_seeds,
    record_demo,
    rollout,
    verify_dataset,
)
from imitate.data.format import MANIFEST_NAME, stage_ends
from imitate.data.record import DemoJob, make_env_and_expert
from imitate.data.seeds import stream_of

TASKS = "ab,abc"
ARGS = ("--tasks", TASKS, "--per-task", "3", "--shard-size", "2", "--seed", "7")
SHARDS = ["t000-s0000.npz", "t000-s0001.npz", "t001-s0000.npz", "t001-s0001.npz"]


def generate_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "imitate.cli", "demos", "generate", "--out", str(out),
            *ARGS, *extra]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imitate.cli", *args], capture_output=True,
                          text=True, check=False)


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("imitate: error:"), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST_NAME).read_text())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run in one process."""
    out = tmp_path_factory.mktemp("demos") / "ref"
    done = subprocess.run(generate_command(out, "--workers", "1"), capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "6 demos of 2 tasks" in done.stdout
    return out


def test_generate_writes_a_complete_verified_dataset(dataset: Path) -> None:
    data = manifest(dataset)
    assert data["complete"] and data["format_version"] == 1 and data["kind"] == "generate"
    assert [Path(s["file"]).name for s in data["shards"]] == SHARDS
    assert data["params"]["tasks"] == ["ab", "abc"] and data["params"]["stream"] == "train_demo"
    assert data["env"]["id"] == "BlockStack-v0" and data["suite_version"] == 2
    assert "--per-task 3" in data["command"] and "expert_version" in data
    done = run_cli("demos", "verify", str(dataset))
    assert done.returncode == 0, done.stderr
    assert "OK, 4 shards" in done.stdout


def test_info_lists_tasks_counts_and_parameters(dataset: Path) -> None:
    done = run_cli("demos", "info", str(dataset))
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout and "6 demos of 2 tasks" in done.stdout
    assert "per_task=3" in done.stdout and "size on disk" in done.stdout
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["#", "demos"])
    rows = [line.split() for line in lines[header + 1:]]
    assert [(row[1], row[-1]) for row in rows] == [("3", "ab"), ("3", "abc")]


def test_rerun_of_a_complete_dataset_changes_nothing(dataset: Path) -> None:
    before = {p.name: p.read_bytes() for p in (dataset / "shards").iterdir()}
    done = subprocess.run(generate_command(dataset, "--quiet"), capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "kept 6 demos (4 shards)" in done.stdout and "made 0" in done.stdout
    assert {p.name: p.read_bytes() for p in (dataset / "shards").iterdir()} == before


def test_kill_9_then_resume_equals_an_uninterrupted_run(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    process = subprocess.Popen(generate_command(out, "--workers", "2"), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if (out / MANIFEST_NAME).exists() and manifest(out)["shards"]:
                break
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the generate process and its workers
        process.wait()
    assert process.returncode == -signal.SIGKILL, "generate finished before it could be killed"
    interrupted = manifest(out)
    assert not interrupted["complete"] and 1 <= len(interrupted["shards"]) < 4
    verify = run_cli("demos", "verify", str(out))
    assert verify.returncode != 0 and "not generated" in verify.stdout

    done = subprocess.run(generate_command(out, "--workers", "1"), capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert manifest(out)["shards"] == manifest(dataset)["shards"]  # sha256 of every shard
    for name in SHARDS:
        assert (out / "shards" / name).read_bytes() == (dataset / "shards" / name).read_bytes()
    assert sorted(p.name for p in (out / "shards").iterdir()) == SHARDS  # no temporaries left
    with DemoDataset(out) as data:
        for task in data.tasks:
            indices = [data.demo(task, i).index for i in range(data.num_demos(task))]
            assert indices == [0, 1, 2]


def test_conflicting_parameters_are_refused(dataset: Path) -> None:
    done = subprocess.run(generate_command(dataset, "--noise", "0.01"), capture_output=True,
                          text=True, check=False)
    one_line_error(done, "noise", str(DEFAULT_NOISE_STD), "0.01")
    done = subprocess.run(generate_command(dataset, "--split", "test"), capture_output=True,
                          text=True, check=False)
    one_line_error(done, "split")


def test_verify_and_loader_name_altered_truncated_and_missing_shards(
    dataset: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    altered, truncated, missing = (broken / "shards" / name for name in SHARDS[:3])
    data = bytearray(altered.read_bytes())
    data[len(data) // 2] ^= 0xFF
    altered.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:-100])
    missing.unlink()

    done = run_cli("demos", "verify", str(broken))
    one_line_error(done, "3 shard(s)")
    assert f"{SHARDS[0]}: altered" in done.stdout
    assert f"{SHARDS[1]}: truncated" in done.stdout
    assert f"{SHARDS[2]}: missing" in done.stdout

    with DemoDataset(broken) as loader:
        for task, position, kind in (("ab", 0, "altered"), ("ab", 2, "truncated"),
                                     ("abc", 0, "missing")):
            with pytest.raises(CorruptShardError, match=kind):
                loader.demo(task, position)
        assert loader.demo("abc", 2).index == 2  # the intact shard still reads


def test_loader_pairs_a_conditioning_demo_with_another_demo_of_its_task(dataset: Path) -> None:
    with DemoDataset(dataset, max_open_shards=2) as data:
        sampler = PairSampler(data, tasks_per_batch=6, pairs_per_task=5,
                              rng=np.random.default_rng(0))
        batch = sampler.sample()
        B, P = 6, 5
        L = int(batch.demo_length.max())
        assert batch.demo_blocks.shape == (B, L, 10, 3) and batch.demo_mask.shape == (B, L)
        assert batch.obs_blocks.shape == (B, P, 10, 3) and batch.labels.shape == (B, P, 4)
        assert batch.obs_gripper.shape == (B, P, 2) and batch.block_mask.shape == (B, 10)
        assert batch.demo_blocks.dtype == np.float32 and batch.labels.dtype == np.float32
        assert (batch.demo_index != batch.pair_index).all()
        for row in range(B):
            task = data.tasks[batch.task[row]]
            demo = data.demo(task, int(batch.demo_index[row]))
            pairs = data.demo(task, int(batch.pair_index[row]))
            length = demo.steps + 1
            assert batch.demo_length[row] == length and batch.demo_mask[row].sum() == length
            assert np.array_equal(batch.demo_blocks[row, :length], demo.blocks)
            assert not batch.demo_blocks[row, length:].any()
            assert np.array_equal(batch.labels[row], pairs.labels[batch.obs_step[row]])
            assert np.array_equal(batch.obs_blocks[row], pairs.blocks[batch.obs_step[row]])
            assert batch.block_mask[row].sum() == len(task.replace(" ", ""))
            assert batch.num_stages[row] == len(task) - 1
            assert batch.stage_ends[row, batch.num_stages[row] - 1] == length - 1
        assert len(data._open) <= 2
        for mode, width in (("snapshot", int(batch.num_stages.max())), ("final", 1)):
            blocks, _, mask = batch.conditioning(mode)
            assert blocks.shape == (B, width, 10, 3) and mask.shape == (B, width)
        final_blocks, _, _ = batch.conditioning("final")
        rows = np.arange(B)
        assert np.array_equal(final_blocks[:, 0], batch.demo_blocks[rows, batch.demo_length - 1])


def test_a_stored_demo_replays_from_its_seeds(dataset: Path) -> None:
    with DemoDataset(dataset) as data:
        stored = data.demo("ab", 1)
    noise = manifest(dataset)["params"]["noise"]
    assert stored.env_seed == demo_seeds(7, Stream.TRAIN_DEMO, "ab", 1, stored.attempt).env_seed
    env, expert = make_env_and_expert()
    try:
        replay = rollout(env, expert, "ab", demo_seeds(7, Stream.TRAIN_DEMO, "ab", 1,
                                                       stored.attempt), noise)
    finally:
        env.close()
    for name in ("blocks", "gripper", "actions", "labels", "stages", "stage_ends"):
        assert np.array_equal(getattr(replay, name), getattr(stored, name)), name
    assert not np.array_equal(stored.actions, stored.labels)  # executed = clean + noise


def test_an_expert_that_never_succeeds_hits_the_attempt_cap() -> None:
    class Idle:
        def act(self, env: object) -> np.ndarray:
            return np.array([0, 0, 0, 1], dtype=np.float32)

    env, _ = make_env_and_expert()
    try:
        job = DemoJob(0, "ab", 0, int(Stream.TRAIN_DEMO), 0, 0.0, max_attempts=1)
        result = record_demo(env, Idle(), job)
    finally:
        env.close()
    assert result.demo is None and result.attempts == 1


def test_training_and_evaluation_seed_streams_are_disjoint() -> None:
    for stream in Stream:
        seeds = [demo_seeds(0, stream, "ab cde", i, a).env_seed for i in range(50)
                 for a in range(3)]
        assert {stream_of(s) for s in seeds} == {stream}
        assert len(set(seeds)) == len(seeds)
    assert demo_seeds(1, Stream.TRAIN_DEMO, "ab", 0) != demo_seeds(0, Stream.TRAIN_DEMO, "ab", 0)
    assert demo_seeds(0, Stream.TRAIN_DEMO, "ab", 0) != demo_seeds(0, Stream.TRAIN_DEMO, "ba", 0)


def test_stage_ends_take_each_stage_when_first_complete_in_order() -> None:
    assert stage_ends(np.array([0, 1, 0, 1, 0, 0, 2]), 2).tolist() == [1, 6]
    assert stage_ends(np.array([0, 0, 2, 2]), 3).tolist() == [2, 2, -1]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("verify", "{tmp}/absent"), ("no such dataset",)),
        (("info", "{tmp}/absent"), ("no such dataset",)),
        (("verify", "{tmp}"), ("not a dataset",)),
        (("generate", "--out", "{tmp}/x", "--per-task", "0"), ("--per-task", "positive")),
        (("generate", "--out", "{tmp}/x", "--per-task", "many"), ("--per-task",)),
        (("generate", "--out", "{tmp}/x", "--per-task", "1", "--tasks", "ab,xyz"), ("'xyz'",)),
        (("generate", "--out", "{tmp}/x", "--per-task", "1", "--tasks", "ab,ab"), ("more than",)),
        (("generate", "--out", "{tmp}/x", "--per-task", "1", "--noise", "-1"), ("--noise",)),
        (("generate", "--out", "{tmp}", "--per-task", "1", "--tasks", "ab"), ("not a dataset",)),
    ],
)
def test_bad_input_is_a_one_line_error(args: tuple[str, ...], words: tuple[str, ...],
                                       tmp_path: Path) -> None:
    (tmp_path / "stray.txt").write_text("not a dataset")
    done = run_cli("demos", *(arg.format(tmp=tmp_path) for arg in args))
    one_line_error(done, *words)
    assert not (tmp_path / "x").exists()


def test_loader_refuses_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a dataset"):
        DemoDataset(tmp_path)


def test_an_aggregate_appends_labelled_rollouts_in_the_dataset_format(
    dataset: Path, tmp_path: Path
) -> None:
    with DemoDataset(dataset) as data:
        demos = [data.demo("ab", i) for i in range(3)]
    failed = dataclasses.replace(demos[2], success=False)
    root = tmp_path / "aggregate"
    create_aggregate(root, {"env": manifest(dataset)["env"], "run": "test"})
    append_shard(root, demos[:2])
    entry = append_shard(root, [failed], attempts=1, header={"round": 1})
    assert (entry.first_demo, entry.failed) == (2, (2,))
    assert verify_dataset(root).ok
    with DemoDataset(root) as data:
        assert data.num_demos("ab") == 3 and data.successful("ab").tolist() == [0, 1]
        assert np.array_equal(data.demo("ab", 2).labels, demos[2].labels)
        batch = PairSampler(data, tasks_per_batch=8, pairs_per_task=2,
                            rng=np.random.default_rng(1)).sample()
        assert set(batch.demo_index.tolist()) <= {0, 1}


def test_test_split_demos_come_from_a_stream_no_evaluation_uses(tmp_path: Path) -> None:
    """``--split test`` no longer reproduces the demos ``imitate eval`` conditions on."""
    out = tmp_path / "test-demos"
    done = run_cli("demos", "generate", "--out", str(out), "--split", "test", "--tasks", "abc",
                   "--per-task", "2", "--seed", "0", "--quiet")
    assert done.returncode == 0, done.stderr
    assert manifest(out)["params"]["stream"] == "test_demo"
    evaluation = {demo_seeds(0, stream, "abc", i, a).env_seed
                  for stream in (Stream.EVAL_DEMO, Stream.EVAL_EPISODE)
                  for i in range(2) for a in range(5)}
    with DemoDataset(out) as data:
        for position in range(2):
            demo = data.demo("abc", position)
            assert demo.success and stream_of(demo.env_seed) == Stream.TEST_DEMO
            assert demo.env_seed >= 2**63  # above the four streams of imitate 0.5
            assert demo.env_seed not in evaluation
