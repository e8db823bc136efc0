"""The ``imitate train`` command. It prints; ``imitate.training`` logs.

Options are generated from ``TrainConfig`` defaults so help and behaviour cannot drift apart;
each option's destination is the ``TrainConfig`` field of that name, so a run's ``config.json``
(``TrainConfig.to_json``) is a ``--config`` file (``imitate.config_files``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from tqdm import tqdm

from imitate.checkpoint import PRETRAINED, PRETRAINED_DIR
from imitate.conditioning import CONDITIONING_MODES
from imitate.config_files import NameList, accept_config_file, apply_config_file
from imitate.distributed import torchrun_ranks
from imitate.metrics import LOGGERS, METRICS_NAME, TENSORBOARD, TENSORBOARD_DIR, WANDB
from imitate.model import CONTEXT_FORMS, TEMPORAL_SCORINGS
from imitate.train_config import (
    ALGORITHMS,
    COMPILE_AUTO_MIN_STEPS,
    COMPILE_CHOICES,
    DEVICES,
    TrainConfig,
)
from imitate.training import Progress, TrainSummary, train
from imitate.workers import add_backend_options

_DEFAULTS = TrainConfig(demos=Path("."), out=Path("."))
#: The training config of the shipped policy (``--config pretrained``).
PRETRAINED_CONFIG = PRETRAINED_DIR / "config.json"


def add_train_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``train`` to the ``imitate`` sub-command set."""
    parser = commands.add_parser(
        "train", help="train a one-shot policy on a demo dataset",
        description="Behaviour cloning (paper section 3.3): tasks drawn with replacement, one "
        "conditioning demo and (observation, label) pairs from another demo of the same task, "
        "Adamax. Writes policy.pt, config.json and metrics.jsonl to --out; --resume continues "
        "an interrupted run. --config FILE (e.g. a run's config.json) sets the defaults of the "
        "options: command line > FILE > built-in defaults.")
    parser.add_argument("--demos", required=True, type=Path, metavar="DIR",
                        help="dataset folder made by 'imitate demos generate' (required, here "
                        "or in --config)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="run folder, e.g. runs/NAME (required, here or in --config)")
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
    parser.add_argument("--init-from", type=Path, default=None, metavar="CHECKPOINT",
                        help="fine-tune: start from this checkpoint's weights ('pretrained' for "
                        "the shipped policy) with a fresh optimiser; the network (width, "
                        "conditioning, context form, temporal dropout) is the checkpoint's, and "
                        "its training tasks count as seen (default: a fresh initialisation)")
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
        ("snapshot_every", int, "N", "also keep the weights every N steps in OUT/snapshots/, "
         "for learning curves of task success (scripts/learning_curves.py; 0: none)"),
        ("log_every", int, "N", "steps between metrics rows and validation batches"),
        ("dagger_rounds", int, "R", "DAgger: collection rounds, evenly spread over the steps"),
        ("dagger_rollouts", int, "N", "DAgger: learner rollouts per round"),
        ("dagger_full_fraction", float, "F", "DAgger: share of whole-episode rollouts (the "
         "rest start at a stage and last one stage)"),
        ("dagger_beta0", float, "B", "DAgger: probability of executing the expert's action in "
         "round 1"),
        ("dagger_decay", float, "G", "DAgger: beta of round r is beta0 * decay^(r-1)"),
        ("dagger_ensemble", int, "E", "DAgger: demo subsamples averaged while collecting"),
        ("dagger_workers", int, "W", "DAgger: worker processes the rollouts run in, off the "
         "training process (1: in it); the same data for any number"),
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
    add_backend_options(parser, "DAgger rollout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--logger", action=NameList, default=_DEFAULTS.logger, metavar="NAMES",
                        help=f"where the metrics rows go besides {METRICS_NAME}, which is always "
                        f"written ({', '.join(LOGGERS)}; comma-separated or repeated): "
                        f"{TENSORBOARD}: event files in OUT/{TENSORBOARD_DIR}; {WANDB}: an "
                        "offline W&B run in OUT/wandb, never uploaded (upload it later with "
                        "'wandb sync OUT/wandb/offline-run-*'). Not a training parameter: a "
                        "resumed run may choose others (default: jsonl)")
    parser.add_argument("--wandb-project", default=_DEFAULTS.wandb_project, metavar="NAME",
                        help=f"W&B project of --logger wandb (default: {_DEFAULTS.wandb_project})")
    accept_config_file(
        parser, named={PRETRAINED: PRETRAINED_CONFIG},
        help_text="JSON file of option values: a run's config.json, or 'pretrained' for the "
        "training config of the shipped policy. Its keys are the options' names without '--', "
        "with '_' for '-' (as in config.json); each value becomes the option's default, so a "
        "flag given on the command line wins (command line > FILE > built-in defaults), and "
        "--demos and --out may come from it. Paths in it are relative to the current folder, "
        "as typed")
    parser.set_defaults(handler=_cmd_train)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of parsed ``imitate train`` arguments, ``--config`` applied
    (``imitate.config_files``); ``ValueError`` on a bad file or value."""
    args = apply_config_file(args)
    return TrainConfig(**{field.name: getattr(args, field.name) for field in fields(TrainConfig)})


def _cmd_train(args: argparse.Namespace) -> None:
    config = train_config(args)
    main_rank = torchrun_ranks().main  # under torchrun, rank 0 alone shows progress and prints
    bar = tqdm(total=config.steps, unit="step", file=sys.stderr, dynamic_ncols=True,
               disable=config.quiet or not sys.stderr.isatty() or not main_rank)

    def update(progress: Progress) -> None:
        bar.update(progress.step - bar.n)
        if progress.note:
            bar.set_postfix_str(progress.note)
        else:
            bar.set_postfix_str(f"loss {progress.loss:.3f}, {progress.samples_per_second:.0f} "
                                "samples/s")

    with bar:
        summary = train(config, on_progress=update)
    if main_rank:
        _print_summary(summary.config or config, summary)


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
    if config.init_from is not None:
        print(f"  started from {config.init_from}'s weights (--init-from): its training tasks "
              "count as seen too")
    if config.algo == "dagger":
        print(f"  DAgger rounds collected: {summary.out / 'dagger'}")
    print(f"  checkpoint: {summary.checkpoint}")
    print(f"  metrics: {summary.out / METRICS_NAME}")
    if TENSORBOARD in config.logger:
        print(f"  tensorboard: {summary.out / TENSORBOARD_DIR} (tensorboard --logdir "
              f"{summary.out / TENSORBOARD_DIR})")
    if WANDB in config.logger:
        print(f"  wandb: offline run in {summary.out / 'wandb'} (upload: wandb sync "
              f"{summary.out / 'wandb'}/offline-run-*)")
