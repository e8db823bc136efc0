"""Policy speed: per-control-step inference latency and training samples/s on this CPU.

Inference: a ``--blocks``-cube task (default 10) with a ``--demo-frames``-frame demo (default
1000, about a 9-stage expert demo); the demo is embedded once (reported separately), then each
control step runs the context and manipulation networks for the E ensemble copies as one batch.
Training: optimisation steps of ``imitate.train`` (forward, loss, backward, Adamax) on batches of
``--tasks-per-batch`` x ``--pairs-per-task`` pairs at 1 and 2 torch threads. Inputs are random
(speed does not depend on values); sizes match real batches.

Both context network forms (``PolicyConfig.context_form``: the paper's Module 2 and imitate 0.5's)
and both temporal attention scorings (``PolicyConfig.temporal_scoring``) are measured by default,
each with the default temporal dropout rule (``PolicyConfig.keep_fraction``, ``min_kept_frames``).

    python benchmarks/policy.py [--blocks 10] [--demo-frames 1000] [--repeats 50]
                                [--forms module2 0.5] [--scorings dot additive]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from imitate import actions
from imitate.agent import OneShotAgent
from imitate.model import (
    CONTEXT_FORMS,
    TEMPORAL_SCORINGS,
    Demo,
    OneShotPolicy,
    PolicyConfig,
    kept_frame_counts,
)
from imitate.train import TensorBatch, _step


def random_demo(rng: np.random.Generator, frames: int, blocks: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    demo_blocks = np.zeros((frames, 10, 3), np.float32)
    demo_blocks[:, :blocks] = rng.normal(0, 0.2, (frames, blocks, 3))
    gripper = np.eye(2, dtype=np.float32)[rng.integers(0, 2, frames)]
    mask = np.arange(10) < blocks
    return demo_blocks, gripper, mask


def inference_latency(policy: OneShotPolicy, blocks: int, frames: int, ensemble: int,
                      repeats: int) -> tuple[float, float]:
    """(ms to embed the demo once, ms per control step) at this ensemble size."""
    rng = np.random.default_rng(0)
    demo_blocks, gripper, mask = random_demo(rng, frames, blocks)
    start = time.perf_counter()
    agent = OneShotAgent(policy, demo_blocks, gripper, mask, [frames - 1], ensemble=ensemble)
    embed_ms = 1000 * (time.perf_counter() - start)
    observation = {"blocks": demo_blocks[0], "gripper": gripper[0]}
    for _ in range(10):  # warm up
        agent.act(observation)
    start = time.perf_counter()
    for _ in range(repeats):
        agent.act(observation)
    return embed_ms, 1000 * (time.perf_counter() - start) / repeats


def training_rate(config: PolicyConfig, blocks: int, frames: int, tasks: int, pairs: int,
                  steps: int) -> float:
    """Training samples (pairs) per second of full optimisation steps."""
    torch.manual_seed(0)
    policy = OneShotPolicy(config)
    optimizer = torch.optim.Adamax(policy.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    demo_blocks = torch.from_numpy(
        rng.normal(0, 0.2, (tasks, frames, blocks, 3)).astype(np.float32))  # (B, T, K, 3)
    labels = actions.to_bins(rng.normal(0, 0.01, (tasks * pairs, 4)))
    batch = TensorBatch(
        demo=Demo(demo_blocks, torch.zeros(tasks, frames, 2), torch.ones(tasks, blocks, dtype=bool),
                  torch.ones(tasks, frames, dtype=bool)),
        blocks=torch.randn(tasks * pairs, blocks, 3) * 0.2,
        gripper=torch.zeros(tasks * pairs, 2),
        block_mask=torch.ones(tasks * pairs, blocks, dtype=torch.bool),
        labels=torch.from_numpy(labels), pairs_per_demo=pairs)
    policy.train()
    _step(policy, optimizer, batch, generator)  # warm up
    start = time.perf_counter()
    for _ in range(steps):
        _step(policy, optimizer, batch, generator)
    return steps * tasks * pairs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--demo-frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--tasks-per-batch", type=int, default=16)
    parser.add_argument("--pairs-per-task", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--scorings", nargs="+", choices=TEMPORAL_SCORINGS,
                        default=list(TEMPORAL_SCORINGS),
                        help="temporal attention scorings to measure (default: both)")
    parser.add_argument("--forms", nargs="+", choices=CONTEXT_FORMS, default=list(CONTEXT_FORMS),
                        help="context network forms to measure (default: both)")
    parser.add_argument("--inference-only", action="store_true",
                        help="measure inference latency only")
    args = parser.parse_args()
    defaults = PolicyConfig()
    kept = int(kept_frame_counts(torch.tensor([args.demo_frames]), defaults.keep_fraction,
                                 defaults.min_kept_frames)[0])
    variants = [(form, scoring) for form in args.forms for scoring in args.scorings]

    print(f"inference, {args.blocks} cubes, demo of {args.demo_frames} frames (temporal dropout "
          f"keeps {kept}: keep fraction {defaults.keep_fraction}, at least "
          f"{defaults.min_kept_frames}), 1 thread")
    print(f"{'context':>8}  {'scoring':>8}  {'ensemble':>8}  {'embed demo (once) ms':>20}  "
          f"{'per control step ms':>19}")
    torch.set_num_threads(1)
    for form, scoring in variants:
        policy = OneShotPolicy(PolicyConfig(temporal_scoring=scoring, context_form=form)).eval()
        for ensemble in (1, 10):
            embed_ms, step_ms = inference_latency(policy, args.blocks, args.demo_frames,
                                                  ensemble, args.repeats)
            print(f"{form:>8}  {scoring:>8}  {ensemble:>8}  {embed_ms:>20.1f}  {step_ms:>19.2f}")

    if args.inference_only:
        return
    print(f"\ntraining, batches of {args.tasks_per_batch} tasks x {args.pairs_per_task} pairs, "
          f"demo frames after temporal dropout: {kept}")
    print(f"{'context':>8}  {'scoring':>8}  {'cubes':>5}  {'threads':>7}  {'samples/s':>9}  "
          f"{'steps/s':>7}")
    for form, scoring in variants:
        for blocks in sorted({4, args.blocks}):
            for threads in (1, 2):
                torch.set_num_threads(threads)
                rate = training_rate(PolicyConfig(temporal_scoring=scoring, context_form=form),
                                     blocks, args.demo_frames, args.tasks_per_batch,
                                     args.pairs_per_task, args.train_steps)
                per_step = args.tasks_per_batch * args.pairs_per_task
                print(f"{form:>8}  {scoring:>8}  {blocks:>5}  {threads:>7}  {rate:>9.0f}  "
                      f"{rate / per_step:>7.2f}")


if __name__ == "__main__":
    main()
