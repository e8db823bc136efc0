"""Data-parallel training under torchrun (``imitate.distributed``): 2 CPU ranks (gloo) train the
same model as one process with the same ``--tasks-per-batch``, and resume.

Why ``--lr 1e-5`` in the comparisons: Adamax divides each gradient element by its running
maximum, so an element whose true gradient is (nearly) zero moves by about ``lr`` in the
direction of its float rounding noise, and the ranks' summed gradients round differently from
one process's. At the default lr 1e-3 the loss curves still agree to 3e-4 after 4 steps, but
noise-driven elements differ by about 1e-3; at lr 1e-5 every weight agrees to 1e-6 except the
demo key biases, whose gradient is exactly zero in exact arithmetic (adding a constant to every
key does not change a softmax), so they follow the rounding noise alone (at most ``lr`` a step).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_line_error

from imitate.distributed import SINGLE, Ranks, torchrun_ranks

LR = "1e-5"
#: Parameters with an exactly zero gradient (softmax shift invariance): rounding noise moves them.
GAUGE_PARAMETERS = "context_net.demo_keys."


def _train_args(demos: Path, out: Path, steps: int, *extra: str) -> list[str]:
    return ["train", "--demos", str(demos), "--out", str(out), "--steps", str(steps),
            "--tasks-per-batch", "4", "--pairs-per-task", "8", "--log-every", "1",
            "--holdout-every", "3", "--checkpoint-every", "2", "--threads", "1",
            "--compile", "off", "--lr", LR, "--quiet", *extra]


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: list[str], ranks: int) -> subprocess.CompletedProcess[str]:
    """``imitate ARGS`` in one process, or under torchrun with ``ranks`` CPU processes."""
    launcher = [sys.executable, "-m", "imitate.cli"] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "imitate.cli"]
    return subprocess.run([*launcher, *args], capture_output=True, text=True, check=False,
                          env=_environment(), timeout=300)


def _losses(run: Path) -> dict[str, np.ndarray]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {name: np.array([row[name] for row in rows])
            for name in ("step", "loss", "val_loss", "train_acc_all")}


def _assert_same_training(one: Path, two: Path) -> None:
    """Same loss curves (rtol 1e-4) and final weights (atol 1e-5) in runs ``one`` and ``two``."""
    mine, theirs = _losses(one), _losses(two)
    np.testing.assert_array_equal(mine["step"], theirs["step"])
    for name in ("loss", "val_loss", "train_acc_all"):
        np.testing.assert_allclose(theirs[name], mine[name], rtol=1e-4, err_msg=name)
    first = torch.load(one / "policy.pt", weights_only=True)
    second = torch.load(two / "policy.pt", weights_only=True)
    assert first["step"] == second["step"]
    for name, weights in first["model_state"].items():
        atol = 1e-5 if not name.startswith(GAUGE_PARAMETERS) else 2 * float(LR) * first["step"]
        torch.testing.assert_close(second["model_state"][name], weights, atol=atol, rtol=0,
                                   msg=name)


@pytest.mark.slow
def test_two_ranks_train_and_resume_as_one_process(tiny_demos: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for out, ranks in ((one, 1), (two, 2)):
        done = _run(_train_args(tiny_demos, out, 4), ranks)
        assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in two.iterdir() if p.name != ".train.lock")
    assert written == ["config.json", "metrics.jsonl", "policy.pt"]
    _assert_same_training(one, two)
    for out, ranks in ((one, 1), (two, 2)):
        done = _run(_train_args(tiny_demos, out, 6, "--resume"), ranks)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("resumed at step 4") == 1, done.stdout  # rank 0 alone prints
    assert _losses(two)["step"].tolist() == [1, 2, 3, 4, 5, 6]
    _assert_same_training(one, two)


def test_two_ranks_split_the_one_process_batch(tiny_demos: Path, tmp_path: Path) -> None:
    """Fast tier: one step each; the first loss is a forward pass on the same batch, split."""
    one, two = tmp_path / "one", tmp_path / "two"
    for out, ranks in ((one, 1), (two, 2)):
        done = _run(_train_args(tiny_demos, out, 1), ranks)
        assert done.returncode == 0, done.stderr
    assert done.stdout.count("step 1/1") == 1, done.stdout
    _assert_same_training(one, two)


def _as_rank(args: list[str], rank: int, world: int) -> subprocess.CompletedProcess[str]:
    """``imitate ARGS`` in one process that looks like torchrun's rank ``rank`` of ``world``."""
    return subprocess.run([sys.executable, "-m", "imitate.cli", *args], capture_output=True,
                          text=True, check=False, timeout=120,
                          env=_environment(RANK=str(rank), WORLD_SIZE=str(world),
                                           LOCAL_RANK=str(rank)))


def test_dagger_under_torchrun_is_refused(tiny_demos: Path, tmp_path: Path) -> None:
    done = _as_rank(_train_args(tiny_demos, tmp_path / "run", 2, "--algo", "dagger"), 0, 2)
    one_line_error(done, "--algo dagger", "torchrun")
    assert not (tmp_path / "run").exists()


def test_fewer_tasks_than_ranks_is_refused(tiny_demos: Path, tmp_path: Path) -> None:
    args = _train_args(tiny_demos, tmp_path / "run", 2)
    args[args.index("--tasks-per-batch") + 1] = "2"
    done = _as_rank(args, 1, 3)
    one_line_error(done, "--tasks-per-batch 2", "3 torchrun processes")


def test_ranks_from_the_environment() -> None:
    assert torchrun_ranks({}) == SINGLE
    ranks = torchrun_ranks({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert ranks == Ranks(1, 2, 1) and not ranks.main and ranks.parallel
    assert [Ranks(r, 3).share(7) for r in range(3)] == [slice(0, 2), slice(2, 4), slice(4, 7)]
    assert Ranks(0, 2).loss_weight(16, 32) == 1.0
    with pytest.raises(ValueError, match="RANK set but not LOCAL_RANK, WORLD_SIZE"):
        torchrun_ranks({"RANK": "0"})
    with pytest.raises(ValueError, match="must be integers"):
        torchrun_ranks({"RANK": "x", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="not a valid rank"):
        torchrun_ranks({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
