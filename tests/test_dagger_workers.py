"""DAgger rollouts in worker processes (``imitate.dagger.collect_round``, ``--dagger-workers``):
the round's data does not depend on how many workers played it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import HOLDOUT_EVERY, one_line_error, run_cli

from imitate.checkpoint import load_checkpoint
from imitate.dagger import DaggerConfig, collect_round
from imitate.data import DemoDataset, holdout_split
from imitate.train_config import RESUMABLE_CHANGES


def _shard_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of a round's aggregate folder but its manifest, by relative path."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.slow  # about 70 s on 2 cores: two spawned workers import torch and PyBullet
def test_two_workers_collect_the_same_round_as_one(tiny_demos: Path, tiny_policy: Path,
                                                    tmp_path: Path) -> None:
    policy = load_checkpoint(tiny_policy).policy
    policy.train()  # as the trainer holds it
    config = DaggerConfig(rounds=1, rollouts=4, full_fraction=0.25, ensemble=2)
    folders = {}
    with DemoDataset(tiny_demos) as dataset:
        train_positions, _ = holdout_split(dataset, HOLDOUT_EVERY)
        for workers in (1, 2):
            seen: list[int] = []
            folders[workers] = collect_round(
                tmp_path / f"run{workers}", 1, policy, dataset, train_positions, config, seed=5,
                on_rollout=lambda done, total, seen=seen: seen.append(done), workers=workers)
            assert seen == [1, 2, 3, 4]
    one, two = _shard_bytes(folders[1]), _shard_bytes(folders[2])
    assert len(one) > 2, sorted(one)  # the manifest and at least one shard
    assert one.keys() == two.keys()
    for name in one:
        assert one[name] == two[name], name
    assert policy.training  # the trainer's policy is left as it was


@pytest.mark.parametrize(("flags", "words"), [
    (("--dagger-workers", "0"), ("--dagger-workers", "positive integer")),
    (("--ray-address", "auto"), ("--ray-address auto", "--backend ray")),
])
def test_bad_dagger_worker_options_give_one_line_errors(tiny_demos: Path, tmp_path: Path,
                                                        flags: tuple[str, ...],
                                                        words: tuple[str, ...]) -> None:
    done = run_cli("train", "--demos", str(tiny_demos), "--out", str(tmp_path / "run"),
                   "--algo", "dagger", "--steps", "2", "--quiet", *flags)
    one_line_error(done, *words)
    assert not (tmp_path / "run").exists()


def test_worker_settings_may_change_on_resume() -> None:
    assert {"dagger_workers", "backend", "ray_address"} <= set(RESUMABLE_CHANGES)
