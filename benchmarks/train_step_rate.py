"""Steady-state training samples/s of one configuration, as JSON on stdout.

Runs ``imitate.training.train_step`` (subsample, forward, loss, backward, Adamax) on one synthetic
batch of real sizes: ``--tasks`` demos of ``--blocks`` cubes and ``--demo-frames`` frames (the
frames the conditioning mode keeps before temporal dropout: the whole demo for ``full``, stage ends
for ``snapshot``, one for ``final``), ``--pairs`` observations per demo. Speed does not depend on
the values. Warm-up steps (and any compilation) are timed apart from the measured steps.

It uses only what imitate 0.5.0 already had (by that version's names, ``_step``, ``_initialise``
and ``Demo``, where they have changed since), so ``benchmarks/policy.py`` runs it against the 0.5.0
sources too (``PYTHONPATH`` pointing at them) for a side-by-side comparison.

    python benchmarks/train_step_rate.py --conditioning full --blocks 10 --demo-frames 1000 \\
        --threads 1 [--compile on|off]
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import torch


def training_module() -> ModuleType:
    """``imitate.training`` (``imitate.train`` before 0.9, with a private step and initialiser)."""
    import imitate

    # Decided by the files of the imitate on PYTHONPATH: an editable install of this checkout
    # would otherwise serve ``imitate.training`` to the 0.5.0 sources.
    newer = (Path(imitate.__file__).parent / "training.py").exists()
    return importlib.import_module("imitate.training" if newer else "imitate.train")


def synthetic_batch(tasks: int, pairs: int, blocks: int, frames: int, seed: int = 0) -> object:
    """A ``TensorBatch`` of random values: demos (tasks, frames, blocks, 3) m, observations
    (tasks * pairs, blocks, 3) m, labels (tasks * pairs, 4) bin indices."""
    from imitate import actions, model

    demo_batch = getattr(model, "DemoBatch", None) or model.Demo  # imitate < 0.9: Demo

    rng = np.random.default_rng(seed)
    gripper = np.eye(2, dtype=np.float32)[rng.integers(0, 2, (tasks, frames))]
    demo = demo_batch(torch.from_numpy(rng.normal(0, 0.2, (tasks, frames, blocks, 3))
                                       .astype(np.float32)),
                      torch.from_numpy(gripper), torch.ones(tasks, blocks, dtype=torch.bool),
                      torch.ones(tasks, frames, dtype=torch.bool))
    rows = tasks * pairs
    return training_module().TensorBatch(
        demo=demo,
        blocks=torch.from_numpy(rng.normal(0, 0.2, (rows, blocks, 3)).astype(np.float32)),
        gripper=torch.from_numpy(np.eye(2, dtype=np.float32)[rng.integers(0, 2, rows)]),
        block_mask=torch.ones(rows, blocks, dtype=torch.bool),
        labels=torch.from_numpy(actions.to_bins(rng.normal(0, 0.01, (rows, 4)))),
        pairs_per_demo=pairs)


def measure(conditioning: str, blocks: int, frames: int, threads: int, tasks: int, pairs: int,
            warmup: int, steps: int, compile: bool | None) -> dict:
    """Samples/s over ``steps`` steps after ``warmup`` steps (which include any compiling)."""
    from imitate.model import OneShotPolicy, PolicyConfig

    training = training_module()
    initialise_policy = getattr(training, "initialise_policy", None) or training._initialise
    train_step = getattr(training, "train_step", None) or training._step

    torch.set_num_threads(threads)
    path, compile_seconds = "eager (0.5.0)", 0.0
    if compile is not None:  # imitate >= 0.7
        from imitate import fast

        state = fast.configure(compile)
        path, compile_seconds = state.describe(), state.seconds
    torch.manual_seed(0)
    policy = OneShotPolicy(PolicyConfig(conditioning=conditioning))
    optimizer = torch.optim.Adamax(policy.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    batch = synthetic_batch(tasks, pairs, blocks, frames)
    initialise_policy(policy, batch, generator)
    policy.train()
    start = time.perf_counter()
    for _ in range(warmup):
        train_step(policy, optimizer, batch, generator)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        train_step(policy, optimizer, batch, generator)
    seconds = time.perf_counter() - start
    import imitate

    return {"samples_per_s": steps * tasks * pairs / seconds, "step_ms": 1000 * seconds / steps,
            "warmup_s": warm, "compile_s": compile_seconds, "path": path,
            "imitate": imitate.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conditioning", default="full")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--demo-frames", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--compile", choices=("on", "off"), default=None,
                        help="imitate >= 0.7: the fused attention kernel (on) or the eager "
                        "code (off)")
    args = parser.parse_args()
    print(json.dumps(measure(args.conditioning, args.blocks, args.demo_frames, args.threads,
                             args.tasks, args.pairs, args.warmup, args.steps,
                             None if args.compile is None else args.compile == "on")))


if __name__ == "__main__":
    main()
