"""The ``imitate train`` command. It prints; ``imitate.training`` logs.

Options are generated from ``TrainConfig`` defaults so help and behaviour cannot drift apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from imitate.conditioning import CONDITIONING_MODES
from imitate.metrics import METRICS_NAME
from imitate.model import CONTEXT_FORMS, TEMPORAL_SCORINGS
from imitate.train_config import (
    ALGORITHMS,
    COMPILE_AUTO_MIN_STEPS,
    COMPILE_CHOICES,
    DEVICES,
    TrainConfig,
)
from imitate.training import Progress, TrainSummary, train

_DEFAULTS = TrainConfig(demos=Path("."), out=Path("."))


def add_train_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``train`` to the ``imitate`` sub-command set."""
    parser = commands.add_parser(
        "train", help="train a one-shot policy on a demo dataset",
        description="Behaviour cloning (paper section 3.3): tasks drawn with replacement, one "
        "conditioning demo and (observation, label) pairs from another demo of the same task, "
        "Adamax. Writes policy.pt, config.json and metrics.jsonl to --out; --resume continues "
        "an interrupted run.")
    parser.add_argument("--demos", required=True, type=Path, metavar="DIR",
                        help="dataset folder made by 'imitate demos generate'")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="run folder, e.g. runs/NAME")
    parser.add_argument("--algo", choices=ALGORITHMS, default=_DEFAULTS.algo,
                        help=f"training algorithm (default: {_DEFAULTS.algo})")
    parser.add_argument("--conditioning", choices=CONDITIONING_MODES,
                        default=_DEFAULTS.conditioning,
                        help="what the policy sees of the demo: every frame (temporal dropout), "
                        "the last frame of each stage, or the last frame "
                        f"(default: {_DEFAULTS.conditioning})")
    parser.add_argument("--temporal-scoring", choices=TEMPORAL_SCORINGS,
                        default=_DEFAULTS.temporal_scoring,
                        help="scores of the context network's temporal attention: scaled dot "
                        "product, or the paper's additive (Bahdanau) form, several times slower "
                        f"(default: {_DEFAULTS.temporal_scoring})")
    parser.add_argument("--context-form", choices=CONTEXT_FORMS, default=_DEFAULTS.context_form,
                        help="context network: the paper's Module 2, or the form imitate 0.5 "
                        f"trained (default: {_DEFAULTS.context_form})")
    parser.add_argument("--device", choices=DEVICES, default=_DEFAULTS.device,
                        help=f"where to train (default: {_DEFAULTS.device}: CUDA when available)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint")
    parser.add_argument("--allow-test-tasks", action="store_true",
                        help="train on a dataset holding tasks of the suite's test classes (test "
                        "tasks or relabellings of them) or demos from an evaluation seed stream; "
                        "refused otherwise, since it makes those tasks seen. The checkpoint "
                        "records it")
    for name, kind, meta, text in (
        ("steps", int, "N", "total optimisation steps"),
        ("seed", int, "S", "root seed of weights, batches and temporal dropout"),
        ("lr", float, "LR", "Adamax learning rate"),
        ("tasks_per_batch", int, "B", "tasks (one conditioning demo each) per step"),
        ("pairs_per_task", int, "P", "(observation, label) pairs per task per step"),
        ("hidden", int, "D", "network width"),
        ("keep_fraction", float, "F", "temporal dropout (full conditioning): share of demo "
         "frames kept"),
        ("min_kept_frames", int, "N", "temporal dropout: frames kept at least (all of a "
         "shorter demo)"),
        ("holdout_every", int, "N", "hold out every N-th demo of each task for validation "
         "(0: none)"),
        ("checkpoint_every", int, "N", "steps between checkpoints"),
        ("log_every", int, "N", "steps between metrics rows and validation batches"),
        ("dagger_rounds", int, "R", "DAgger: collection rounds, evenly spread over the steps"),
        ("dagger_rollouts", int, "N", "DAgger: learner rollouts per round"),
        ("dagger_full_fraction", float, "F", "DAgger: share of whole-episode rollouts (the "
         "rest start at a stage and last one stage)"),
        ("dagger_beta0", float, "B", "DAgger: probability of executing the expert's action in "
         "round 1"),
        ("dagger_decay", float, "G", "DAgger: beta of round r is beta0 * decay^(r-1)"),
        ("dagger_ensemble", int, "E", "DAgger: demo subsamples averaged while collecting"),
    ):
        default = getattr(_DEFAULTS, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default,
                            metavar=meta, help=f"{text} (default: {default})")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default: all cores)")
    parser.add_argument("--compile", choices=COMPILE_CHOICES, default=_DEFAULTS.compile,
                        help="run the additive attention in the fused C++ kernel (imitate.fast; "
                        "built once per machine, about a minute, then loaded in a second): on, "
                        f"off (the plain eager code), or auto: on for runs of at least "
                        f"{COMPILE_AUTO_MIN_STEPS} steps; where no compiler works it falls back "
                        f"to eager with a warning (default: {_DEFAULTS.compile})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> None:
    config = TrainConfig(
        demos=args.demos, out=args.out, algo=args.algo, conditioning=args.conditioning,
        steps=args.steps, device=args.device, resume=args.resume, seed=args.seed, lr=args.lr,
        tasks_per_batch=args.tasks_per_batch, pairs_per_task=args.pairs_per_task,
        hidden=args.hidden, temporal_scoring=args.temporal_scoring,
        context_form=args.context_form, keep_fraction=args.keep_fraction,
        min_kept_frames=args.min_kept_frames,
        allow_test_tasks=args.allow_test_tasks, holdout_every=args.holdout_every,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, threads=args.threads,
        compile=args.compile, quiet=args.quiet, dagger_rounds=args.dagger_rounds,
        dagger_rollouts=args.dagger_rollouts,
        dagger_full_fraction=args.dagger_full_fraction, dagger_beta0=args.dagger_beta0,
        dagger_decay=args.dagger_decay, dagger_ensemble=args.dagger_ensemble)
    bar = tqdm(total=config.steps, unit="step", file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet or not sys.stderr.isatty())

    def update(progress: Progress) -> None:
        bar.update(progress.step - bar.n)
        if progress.note:
            bar.set_postfix_str(progress.note)
        else:
            bar.set_postfix_str(f"loss {progress.loss:.3f}, {progress.samples_per_second:.0f} "
                                "samples/s")

    with bar:
        summary = train(config, on_progress=update)
    _print_summary(config, summary)


def _print_summary(config: TrainConfig, summary: TrainSummary) -> None:
    done = summary.step - summary.start_step
    resumed = f" (resumed at step {summary.start_step})" if summary.start_step else ""
    print(f"{summary.out}: {config.algo} on {config.demos}, conditioning {config.conditioning}, "
          f"step {summary.step}/{config.steps}{resumed}")
    print(f"  {done} steps, {summary.samples} samples in {summary.seconds:.1f} s "
          f"({summary.samples_per_second:.0f} samples/s, {summary.attention_path})")
    last = summary.last
    if last:
        line = f"  last loss {last['loss']:.3f}, train accuracy (all 4 heads) " \
               f"{last['train_acc_all']:.3f}"
        if "val_loss" in last:
            line += f"; held-out loss {last['val_loss']:.3f}, accuracy {last['val_acc_all']:.3f}"
        print(line)
    if config.allow_test_tasks:
        print("  trained with --allow-test-tasks: evaluations mark the test classes it holds "
              "as seen")
    if config.algo == "dagger":
        print(f"  DAgger rounds collected: {summary.out / 'dagger'}")
    print(f"  checkpoint: {summary.checkpoint}")
    print(f"  metrics: {summary.out / METRICS_NAME}")
