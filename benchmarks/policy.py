"""Policy speed: per-control-step inference latency and training samples/s on this CPU.

Inference: a ``--blocks``-cube task (default 10) with a ``--demo-frames``-frame demo (default
1000, about a 9-stage expert demo); the demo is embedded once (reported separately), then each
control step runs the context and manipulation networks for the E ensemble copies as one batch;
both context network forms, with the eager and the fused attention (``imitate.fast``).

Training, side by side: ``train_step_rate.py`` processes (subsample, forward, loss, backward,
Adamax on batches of ``--tasks-per-batch`` x ``--pairs-per-task`` pairs of real sizes, random
values) for imitate 0.5.0 (its sources extracted from git), this code with the eager attention,
and this code with the fused kernel, in interleaved rounds; for each conditioning mode, 4 and 10
cubes, 1 and 2 threads. Prints a markdown table with the ratios.

    python benchmarks/policy.py [--inference-only | --training-only] [--rounds 3]
        [--conditionings full snapshot final] [--cubes 4 10] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from imitate import fast
from imitate.agent import OneShotAgent
from imitate.conditioning import CONDITIONING_MODES
from imitate.model import (
    CONTEXT_FORMS,
    TEMPORAL_SCORINGS,
    OneShotPolicy,
    PolicyConfig,
    kept_frame_counts,
)


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


#: imitate 0.5.0, the training-speed baseline (issue 17): its sources are taken from this commit.
BASELINE_REVISION = "9e62b64"
STEP_RATE = Path(__file__).with_name("train_step_rate.py")
#: Training paths measured side by side: label, extra ``train_step_rate.py`` arguments.
PATHS = (("0.5.0", []), ("eager", ["--compile", "off"]), ("fused", ["--compile", "on"]))


def demo_frames(conditioning: str, cubes: int, full_frames: int) -> int:
    """Frames a conditioning mode gives the policy before temporal dropout, for a task of
    ``cubes`` cubes (``cubes - 1`` stages) whose 10-cube demo has ``full_frames`` frames."""
    stages = cubes - 1
    if conditioning == "full":
        return max(1, round(full_frames * stages / 9))
    return stages if conditioning == "snapshot" else 1


def baseline_sources(revision: str, into: Path) -> Path | None:
    """Extract ``imitate`` and ``envs`` of ``revision`` from this git checkout into ``into``;
    None (and a note) when this is not a git checkout or the revision is unknown."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(root), "archive", revision, "imitate", "envs"],
                             capture_output=True)
    if archive.returncode != 0:
        print(f"note: no 0.5.0 column: git archive {revision} failed "
              f"({archive.stderr.decode().strip()[:200]})")
        return None
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def step_rate(path: list[str], baseline: Path | None, conditioning: str, cubes: int,
              frames: int, threads: int, tasks: int, pairs: int, steps: int) -> dict:
    """One ``train_step_rate.py`` process: this checkout's code, or 0.5.0's when ``baseline``."""
    command = [sys.executable, str(STEP_RATE), "--conditioning", conditioning, "--blocks",
               str(cubes), "--demo-frames", str(frames), "--threads", str(threads), "--tasks",
               str(tasks), "--pairs", str(pairs), "--steps", str(steps), *path]
    environment = dict(os.environ)
    if baseline is not None:
        environment["PYTHONPATH"] = str(baseline)
    else:
        environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def training_table(args: argparse.Namespace) -> None:
    """Samples/s of 0.5.0, the eager path and the fused path, measured in interleaved rounds
    (each condition's paths run one after the other, round after round, so a change in machine
    load hits them alike); medians over rounds."""
    with tempfile.TemporaryDirectory() as scratch:
        baseline = (None if args.baseline == "none"
                    else baseline_sources(args.baseline, Path(scratch) / "imitate-0.5.0"))
        paths = [(label, extra) for label, extra in PATHS if label != "0.5.0" or baseline]
        print(f"\ntraining samples/s, batches of {args.tasks_per_batch} tasks x "
              f"{args.pairs_per_task} pairs, median of {args.rounds} interleaved rounds of "
              f"{args.train_steps} steps after warm-up (0.5.0: git {args.baseline})")
        header = "| conditioning | cubes | demo frames | threads | " + " | ".join(
            label for label, _ in paths) + " | fused / eager |" + (
            " fused / 0.5.0 |" if baseline else "") + " kernel build or load s |"
        print(header)
        print("|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|")
        for conditioning in args.conditionings:
            for cubes in args.cubes:
                frames = demo_frames(conditioning, cubes, args.demo_frames)
                for threads in args.threads:
                    rates: dict[str, list[float]] = {label: [] for label, _ in paths}
                    build_s = 0.0
                    for _ in range(args.rounds):
                        for label, extra in paths:
                            result = step_rate(extra, baseline if label == "0.5.0" else None,
                                               conditioning, cubes, frames, threads,
                                               args.tasks_per_batch, args.pairs_per_task,
                                               args.train_steps)
                            rates[label].append(result["samples_per_s"])
                            if label == "fused":
                                build_s = max(build_s, result["compile_s"])
                    median = {label: statistics.median(r) for label, r in rates.items()}
                    cells = " | ".join(f"{median[label]:.0f}" for label, _ in paths)
                    ratio = f" {median['fused'] / median['eager']:.2f}x |"
                    if baseline:
                        ratio += f" {median['fused'] / median['0.5.0']:.2f}x |"
                    print(f"| {conditioning} | {cubes} | {frames} | {threads} | {cells} |"
                          f"{ratio} {build_s:.1f} |", flush=True)


def inference_table(args: argparse.Namespace) -> None:
    """Per-control-step latency of each context form and scoring, eager and fused attention."""
    defaults = PolicyConfig()
    kept = int(kept_frame_counts(torch.tensor([args.demo_frames]), defaults.keep_fraction,
                                 defaults.min_kept_frames)[0])
    print(f"inference, {args.blocks} cubes, demo of {args.demo_frames} frames (temporal dropout "
          f"keeps {kept}: keep fraction {defaults.keep_fraction}, at least "
          f"{defaults.min_kept_frames}), 1 thread")
    print(f"{'context':>8}  {'scoring':>8}  {'attention':>9}  {'ensemble':>8}  "
          f"{'embed demo (once) ms':>20}  {'per control step ms':>19}")
    torch.set_num_threads(1)
    for label in args.attention:
        state = fast.configure(label == "fused")
        if label == "fused" and state.path != "compiled":
            print(f"note: no fused rows: {state.describe()}")
            continue
        for form in args.forms:
            for scoring in args.scorings:
                config = PolicyConfig(temporal_scoring=scoring, context_form=form)
                policy = OneShotPolicy(config).eval()
                for ensemble in (1, 10):
                    embed_ms, step_ms = inference_latency(policy, args.blocks, args.demo_frames,
                                                          ensemble, args.repeats)
                    print(f"{form:>8}  {scoring:>8}  {label:>9}  {ensemble:>8}  "
                          f"{embed_ms:>20.1f}  {step_ms:>19.2f}")
    fast.configure(False)


def attention_table(repeats: int = 10) -> None:
    """Forward plus backward of the additive attention weights alone, eager and fused, at the
    sizes of a 10-cube training step (spatial: 512 rows; neighborhood: 16 demos x 50 frames)."""
    torch.set_num_threads(1)
    state = fast.configure(True)
    print(f"\nadditive attention weights, forward + backward, 1 thread ({state.describe()})")
    print("| rows x queries x slots x heads x width | eager ms | fused ms | eager / fused |")
    print("|---|---:|---:|---:|")
    generator = torch.Generator().manual_seed(0)
    for rows in (512, 800):
        query = torch.randn(rows, 10, 2, 64, generator=generator).requires_grad_()
        context = torch.randn(rows, 10, 2, 64, generator=generator).requires_grad_()
        v = torch.randn(2, 64, generator=generator).requires_grad_()
        mask = torch.ones(rows, 10, dtype=torch.bool)
        upstream = torch.randn(rows, 10, 2, 10, generator=generator)
        times = {}
        for label, function in (("eager", fast.additive_weights),
                                ("fused", fast.attention_weights)):
            for _ in range(2):  # warm up
                torch.autograd.grad(function(query, context, v, mask), (query, context, v),
                                    upstream)
            start = time.perf_counter()
            for _ in range(repeats):
                torch.autograd.grad(function(query, context, v, mask), (query, context, v),
                                    upstream)
            times[label] = 1000 * (time.perf_counter() - start) / repeats
        if state.path != "compiled":
            times["fused"] = float("nan")
        print(f"| {rows} x 10 x 10 x 2 x 64 | {times['eager']:.1f} | {times['fused']:.1f} | "
              f"{times['eager'] / times['fused']:.1f}x |")
    fast.configure(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10, help="cubes for inference")
    parser.add_argument("--demo-frames", type=int, default=1000,
                        help="frames of a 10-cube (9-stage) demo; fewer cubes scale it")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--scorings", nargs="+", choices=TEMPORAL_SCORINGS,
                        default=[PolicyConfig().temporal_scoring],
                        help="temporal attention scorings for inference (default: the default)")
    parser.add_argument("--forms", nargs="+", choices=CONTEXT_FORMS, default=list(CONTEXT_FORMS),
                        help="context network forms for inference (default: both)")
    parser.add_argument("--attention", nargs="+", choices=("eager", "fused"),
                        default=["eager", "fused"], help="inference attention paths")
    parser.add_argument("--tasks-per-batch", type=int, default=16)
    parser.add_argument("--pairs-per-task", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=3,
                        help="measured steps per process, after 2 warm-up steps")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds per training condition (median reported)")
    parser.add_argument("--conditionings", nargs="+", choices=CONDITIONING_MODES,
                        default=list(CONDITIONING_MODES))
    parser.add_argument("--cubes", nargs="+", type=int, default=[4, 10])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--baseline", default=BASELINE_REVISION,
                        help="git revision of imitate 0.5.0 for the baseline column, or none")
    parser.add_argument("--inference-only", action="store_true")
    parser.add_argument("--training-only", action="store_true")
    args = parser.parse_args()
    if not args.training_only:
        inference_table(args)
        attention_table()
    if not args.inference_only:
        training_table(args)


if __name__ == "__main__":
    main()
