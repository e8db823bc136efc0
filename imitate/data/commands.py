"""The ``imitate demos`` commands (generate, verify, info, export). Commands print;
``imitate.data`` logs.

Wired into the ``imitate`` parser by ``imitate.cli`` through ``add_demos_commands``. Failures
raise ``DatasetError`` / ``ValueError``, which ``imitate.cli.main`` prints as one line (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from imitate.data.export import (
    DEFAULT_HOLDOUT_EVERY,
    FORMATS,
    ExportConfig,
    ExportSummary,
    export_dataset,
)
from imitate.data.format import DatasetError
from imitate.data.generate import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_SHARD_SIZE,
    GenerateConfig,
    GenerateSummary,
    Progress,
    generate,
)
from imitate.data.verify import dataset_info, verify_dataset
from imitate.options import add_quiet
from imitate.workers import add_backend_options


def add_demos_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``demos generate|verify|info|export`` to the ``imitate`` sub-command set."""
    demos = commands.add_parser("demos", help="generate, verify, describe and export demo datasets")
    sub = demos.add_subparsers(dest="demos_command", required=True, metavar="ACTION")

    gen = sub.add_parser("generate", help="record expert demonstrations into a dataset folder",
                         description="Record successful expert demos. Re-running the same "
                         "command resumes an interrupted run.")
    gen.add_argument("--out", required=True, type=Path, metavar="DIR",
                     help="dataset folder, e.g. demos/NAME (created, or resumed)")
    gen.add_argument("--split", choices=("train", "test"), default="train",
                     help="train: training-demo seeds, suite training tasks; test: evaluation-"
                     "demo seeds (disjoint), suite test tasks (default: train)")
    gen.add_argument("--tasks", metavar="LAYOUTS",
                     help="comma-separated layouts to use instead of the split's suite tasks, "
                     "e.g. 'ab cd,abc'")
    gen.add_argument("--per-task", required=True, type=int, metavar="N",
                     help="successful demos per task")
    gen.add_argument("--workers", type=int, default=1, metavar="W",
                     help="worker processes, each with its own simulator (default: 1)")
    add_backend_options(gen, "demo")
    gen.add_argument("--seed", type=int, default=0, metavar="S", help="root seed (default: 0)")
    gen.add_argument("--noise", type=float, default=None, metavar="STD",
                     help="std of the noise added to executed displacements, m per step "
                     "(default: the expert's, envs.expert.DEFAULT_NOISE_STD); labels stay clean")
    gen.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, metavar="K",
                     help=f"demos per shard file (default: {DEFAULT_SHARD_SIZE})")
    gen.add_argument("--max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS, metavar="A",
                     help="rollouts allowed per demo before giving up "
                     f"(default: {DEFAULT_MAX_ATTEMPTS})")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(handler=_cmd_generate, on_interrupt="the finished shards are kept: the "
                     "same command makes the rest")

    verify = sub.add_parser("verify", help="check every shard against the manifest's sha256")
    verify.add_argument("dataset", type=Path, metavar="DIR")
    add_quiet(verify, "progress (it has none)")
    verify.set_defaults(handler=_cmd_verify)

    info = sub.add_parser("info", help="tasks, demos, steps, size and parameters of a dataset")
    info.add_argument("dataset", type=Path, metavar="DIR")
    add_quiet(info, "progress (it has none)")
    info.set_defaults(handler=_cmd_info)
    _add_export_command(sub)


def _add_export_command(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export", help="write a dataset as a Minari dataset or a robomimic HDF5 file",
        description="Export every demo, losslessly: observations, clean expert labels as "
        "actions, executed actions, stages and stage ends, task layout, seeds, the env's "
        "rewards and episode ends, and the hold-out split 'imitate train' uses. Needs the "
        "'export' extra: pip install 'imitate-oneshot[export]'.")
    export.add_argument("dataset", type=Path, metavar="DIR",
                        help="a complete dataset made by 'imitate demos generate'")
    export.add_argument("--format", required=True, choices=FORMATS,
                        help="minari: a Minari dataset (hdf5 backend); robomimic: one HDF5 "
                        "file in robomimic's layout")
    export.add_argument("--out", type=Path, default=None, metavar="PATH",
                        help="minari: the datasets folder the id is resolved in (default: "
                        "Minari's, MINARI_DATASETS_PATH or ~/.minari/datasets); robomimic: the "
                        "file (default: DIR.robomimic.hdf5 beside DIR)")
    export.add_argument("--name", default=None, metavar="ID",
                        help="Minari dataset id, namespace/name-vN (default: "
                        "imitate/blockstack-<DIR's name>-v0)")
    export.add_argument("--holdout-every", type=int, default=DEFAULT_HOLDOUT_EVERY, metavar="N",
                        help="every N-th demo of each task is the validation split, as in "
                        f"'imitate train --holdout-every N'; 0: none (default: "
                        f"{DEFAULT_HOLDOUT_EVERY}, train's)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace an existing output instead of refusing")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.set_defaults(handler=_cmd_export)


def _progress_bar(quiet: bool) -> tuple[Any, Callable[[Progress], None]]:
    """A tqdm bar on stderr (off when ``quiet`` or not a TTY) and the callback that feeds it."""
    disable = quiet or not sys.stderr.isatty()
    bar = tqdm(total=None, unit="demo", file=sys.stderr, disable=disable, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")

    def update(progress: Progress) -> None:
        bar.total = progress.total
        bar.update(progress.done - bar.n)
        rate = bar.format_dict.get("rate") or 0.0
        bar.set_postfix_str(f"{60 * rate:.1f} demos/min, {progress.discarded} discarded")

    return bar, update


def _cmd_generate(args: argparse.Namespace) -> None:
    tasks = None
    if args.tasks is not None:
        tasks = tuple(part.strip() for part in args.tasks.split(","))
    config = GenerateConfig(out=args.out, per_task=args.per_task, split=args.split, tasks=tasks,
                            workers=args.workers, seed=args.seed, noise=args.noise,
                            shard_size=args.shard_size, max_attempts=args.max_attempts,
                            backend=args.backend, ray_address=args.ray_address)
    bar, update = _progress_bar(args.quiet)
    with bar:
        summary = generate(config, on_progress=update)
    _print_summary(config, summary)


def _print_summary(config: GenerateConfig, summary: GenerateSummary) -> None:
    rate = 60 * summary.new_demos / summary.seconds if summary.seconds else 0.0
    print(f"{summary.out}: {summary.total_demos} demos of {len(config.layouts)} tasks "
          f"({config.per_task} per task, split {config.split}, seed {config.seed}, "
          f"noise {config.noise})")
    print(f"  kept {summary.kept_demos} demos ({summary.shards_kept} shards) from before; "
          f"made {summary.new_demos} ({summary.shards_written} shards, {summary.new_steps} steps)"
          f" in {summary.seconds:.1f} s, {rate:.1f} demos/min, workers: {config.workers}"
          f" ({config.backend})")
    attempts = summary.new_demos + summary.discarded
    print(f"  discarded {summary.discarded} unsuccessful of {attempts} attempts")
    print(f"  check it with: imitate demos verify {summary.out}")


def _cmd_export(args: argparse.Namespace) -> None:
    config = ExportConfig(dataset=args.dataset, format=args.format, out=args.out, name=args.name,
                          overwrite=args.overwrite, holdout_every=args.holdout_every)
    bar = tqdm(total=None, unit="demo", file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet or not sys.stderr.isatty())

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    with bar:
        summary = export_dataset(config, on_progress=update)
    _print_export_summary(config, summary)


def _print_export_summary(config: ExportConfig, summary: ExportSummary) -> None:
    split = (f"every {config.holdout_every}-th demo of each task" if config.holdout_every
             else "none")
    what = (f"Minari dataset {summary.dataset_id}" if summary.format == "minari"
            else "robomimic file")
    print(f"{config.dataset} -> {what} {summary.path}")
    print(f"  {summary.demos} demos, {summary.steps} steps, {summary.held_out} held out for "
          f"validation ({split}), {summary.seconds:.1f} s")
    if summary.format == "minari":
        print(f"  load it with: MINARI_DATASETS_PATH={summary.root} python -c \"import minari; "
              f"print(minari.load_dataset('{summary.dataset_id}'))\"")
    else:
        print("  train/valid split: mask/train, mask/valid (robomimic's hdf5_filter_key and "
              "hdf5_validation_filter_key)")


def _cmd_verify(args: argparse.Namespace) -> None:
    report = verify_dataset(args.dataset)
    for problem in report.problems:
        print(f"{args.dataset}/{problem}")
    if not report.ok:
        files = ", ".join(p.file for p in report.problems[:5])
        more = f" and {len(report.problems) - 5} more" if len(report.problems) > 5 else ""
        raise DatasetError(f"{args.dataset}: {len(report.problems)} shard(s) failed "
                           f"verification: {files}{more}")
    print(f"{args.dataset}: OK, {report.checked} shards, {report.bytes} bytes, sha256 verified")


def _size(num: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num < 1024 or unit == "GiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    raise AssertionError("unreachable")


def _cmd_info(args: argparse.Namespace) -> None:
    info = dataset_info(args.dataset)
    manifest = info.manifest
    params = manifest.get("params", {})
    status = "complete" if manifest.get("complete") else (
        f"INCOMPLETE: {info.shards} of {info.planned_shards} shards")
    print(f"{info.root}: {manifest.get('kind')} dataset, format v{manifest['format_version']}, "
          f"{status}")
    print(f"  {info.demos} demos of {len(info.tasks)} tasks, {info.steps} steps "
          f"({info.steps / max(info.demos, 1):.0f} per demo), {info.discarded} attempts discarded")
    print(f"  size on disk {_size(info.disk_bytes)} ({info.shard_bytes / max(info.demos, 1):.0f} "
          "bytes per demo)")
    env = manifest.get("env", {})
    print(f"  env {env.get('id')} {env.get('kwargs')}, suite v{manifest.get('suite_version')}, "
          f"expert {manifest.get('expert_version')}")
    shown = {k: v for k, v in params.items() if k != "tasks"}
    print("  parameters: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    print(f"  command: {manifest.get('command')}")
    print(f"{'#':>4}  {'demos':>6}  {'steps':>8}  {'discarded':>9}  task")
    for index, task in enumerate(info.tasks):
        print(f"{index:>4}  {task.demos:>6}  {task.steps:>8}  {task.attempts - task.demos:>9}  "
              f"{task.layout}")
    if info.damaged:
        raise DatasetError(f"{info.root} is damaged: {len(info.damaged)} of {info.shards} shards "
                           f"missing or of the wrong size ({info.damaged[0]}"
                           f"{', ...' if len(info.damaged) > 1 else ''}); 'imitate demos verify "
                           f"{info.root}' checks every checksum")
    if not manifest.get("complete"):
        raise DatasetError(f"{info.root} is incomplete ({info.shards} of {info.planned_shards} "
                           "shards); rerun the 'demos generate' command above to finish it")
