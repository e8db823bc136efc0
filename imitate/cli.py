"""The ``imitate`` command line. Commands print; the libraries they call log.

Every command fails with a one-line ``imitate: error: ...`` message and exit status 2 on bad input.

This module is the only one that imports inside functions, on purpose: it is the program's main
module, and every spawn worker (demo recording, evaluation) re-imports the main module before it
can start. Kept light (no torch, no PyBullet), it lets a worker start in a fraction of a second, so
an interrupt during start-up finds no worker half-way through loading torch.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from imitate import __version__
from imitate.options import add_quiet


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _cmd_tasks(args: argparse.Namespace) -> None:
    import envs

    suite = envs.load_suite(envs.SUITE_VERSION if args.suite_version is None
                            else args.suite_version)
    if args.seen_by is not None:
        _print_seen_by(args, suite)
        return
    if args.layouts:
        raise CommandError("layouts are read only with --seen-by CHECKPOINT")
    splits = ("train", "test") if args.split == "all" else (args.split,)
    rows = [(split, task) for split in splits for task in suite.split(split)]
    classes = ("one task per class" if suite.version >= 2
               else "several tasks share a class (superseded by v2)")
    print(f"task suite v{suite.version}: {len(suite.train)} train, {len(suite.test)} test; "
          f"{classes}")
    print(f"{'#':>4}  {'split':<5}  {'blocks':>6}  {'towers':>6}  {'stages':>6}  {'class':<9}  "
          "layout")
    for index, (split, task) in enumerate(rows):
        print(f"{index:>4}  {split:<5}  {task.num_blocks:>6}  {len(task.towers):>6}  "
              f"{task.num_stages:>6}  {task.task_class!s:<9}  {task.layout}")
    for split in splits:
        counts = Counter(task.num_stages for task in suite.split(split))
        summary = ", ".join(f"{k}: {counts[k]}" for k in sorted(counts))
        print(f"{split} tasks by stage count: {summary}")
    print("class: heights of the towers built, in build order, then +N single blocks; tasks of "
          "one class are the same task up to relabelling of the blocks")


def _print_seen_by(args: argparse.Namespace, suite: Any) -> None:
    """``imitate tasks --seen-by CHECKPOINT [LAYOUT...]``: seen or unseen, per layout (default:
    the suite split's tasks)."""
    import envs
    from imitate.checkpoint import load_checkpoint
    from imitate.novelty import SEEN, novelty, seen_as, training_tasks

    saved = load_checkpoint(args.seen_by)
    trained = training_tasks(saved.training)
    if trained is None:
        raise CommandError(f"{args.seen_by} does not record its training tasks; cannot tell "
                           "seen from unseen")
    if args.layouts:
        layouts = [envs.parse_task(text).layout for text in args.layouts]
    else:
        layouts = [task.layout for task in suite.split(args.split)]
    classes = frozenset(envs.parse_task(layout).task_class for layout in trained)
    print(f"{args.seen_by}: trained on {len(trained)} tasks of {len(classes)} classes")
    print(f"{'layout':<22}  {'class':<9}  {'split':<5}  {'':<6}  training tasks of its class")
    for layout in layouts:
        label = novelty(layout, classes)
        same = ", ".join(seen_as(layout, trained)) if label == SEEN else "-"
        split = suite.split_of(layout) or "-"
        print(f"{layout:<22}  {envs.parse_task(layout).task_class!s:<9}  {split:<5}  "
              f"{label:<6}  {same}")


def _cmd_quickstart(args: argparse.Namespace) -> None:
    from imitate.quickstart import TINY_ENV, QuickstartConfig, run_quickstart

    tiny = args.tiny or os.environ.get(TINY_ENV, "") not in ("", "0")
    out = args.out or Path("runs/quickstart-tiny" if tiny else "runs/quickstart")
    config = QuickstartConfig(out=out, tiny=tiny, workers=args.workers, seed=args.seed)
    start = time.perf_counter()
    result = run_quickstart(config, on_stage=(lambda text: None) if args.quiet
                            else lambda text: print(f"== {text}", flush=True))
    summary = result.train_summary
    minutes, seconds = divmod(round(time.perf_counter() - start), 60)
    print(f"\nquickstart{' (tiny)' if tiny else ''} done in {minutes} min {seconds} s.")
    print("\n1. The shipped policy (--checkpoint pretrained) imitating tasks of classes it never "
          "trained on,\n   each episode from ONE demo it had never seen:")
    _print_task_rows(result.pretrained_episodes)
    print(f"   video   {result.pretrained_video}   ({result.pretrained_video_outcome})")
    print(f"   report  {result.pretrained_report}")
    print(f"\n2. A short run of your own: {summary.step} BC steps fine-tuning the shipped policy "
          f"on {result.demos}")
    print(f"   held-out action accuracy {result.held_out_accuracy:.3f} (best constant action "
          f"{result.constant_accuracy:.3f}; 4 heads vs the expert, {result.held_out_frames} "
          "frames)")
    _print_task_rows(result.episodes)
    print(f"   video   {result.video}")
    print(f"   report  {result.report}")
    print(f"   run     {result.run}   (policy.pt, config.json, metrics.jsonl)")
    print("\nunseen: no task of its class (the task up to relabelling of its blocks) was trained "
          "on;\na fine-tuned policy has trained on its own tasks and on the shipped policy's.")


def _print_task_rows(episodes: Sequence[Any]) -> None:
    """One line per task of ``episodes`` (``EpisodeResult``): class, seen or unseen, stages,
    policy and expert successes."""
    import envs

    print(f"   {'task':<12}{'class':<8}{'':<8}{'stages':>6}{'policy':>9}{'expert':>9}")
    for task in dict.fromkeys(e.task for e in episodes):
        mine = [e for e in episodes if e.task == task]
        wins = sum(e.success for e in mine)
        expert = sum(bool(e.expert_success) for e in mine)
        task_class = str(envs.parse_task(task).task_class)
        print(f"   {task:<12}{task_class:<8}{mine[0].novelty:<8}{mine[0].num_stages:>6}"
              f"{f'{wins}/{len(mine)}':>9}{f'{expert}/{len(mine)}':>9}")


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error format (``imitate: error: ...``, exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"imitate: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="imitate", description="One-shot imitation learning for block stacking (PyBullet)."
    )
    parser.add_argument("--version", action="version", version=f"imitate {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks = commands.add_parser(
        "tasks", help="print the task suite as a table, or which tasks a checkpoint has seen",
        description="Lists the suite's tasks with their class (the task up to relabelling of its "
        "blocks). With --seen-by CHECKPOINT, says for each LAYOUT (default: the split's tasks) "
        "whether that checkpoint trained on its class (seen) or not (unseen).")
    tasks.add_argument("layouts", nargs="*", metavar="LAYOUT",
                       help="layouts to look up with --seen-by, e.g. 'ab cd' 'abc'")
    tasks.add_argument("--split", choices=("train", "test", "all"), default="all",
                       help="which part of the suite to list (default: all)")
    tasks.add_argument("--seen-by", metavar="CHECKPOINT", default=None,
                       help="a policy checkpoint (or 'pretrained'): label each task seen or "
                       "unseen by it")
    tasks.add_argument("--suite-version", type=int, default=None, metavar="V",
                       help="suite version to list (default: the current one)")
    add_quiet(tasks, "progress (it has none)")
    tasks.set_defaults(handler=_cmd_tasks)

    from imitate.data.commands import add_demos_commands

    add_demos_commands(commands)
    from imitate.train_commands import add_train_commands

    add_train_commands(commands)
    from imitate.eval_commands import (
        add_attention_command,
        add_eval_commands,
        add_render_command,
    )

    add_eval_commands(commands)
    add_render_command(commands)
    add_attention_command(commands)

    quick = commands.add_parser("quickstart", help="the whole pipeline on a small default",
                                description="Record demos of a few 2- and 3-cube tasks, train "
                                "a BC policy on them and score it on held-out demos.")
    quick.add_argument("--out", type=Path, default=None, metavar="DIR",
                       help="folder for every artefact (default: runs/quickstart, or "
                       "runs/quickstart-tiny with --tiny)")
    quick.add_argument("--tiny", action="store_true",
                       help="CI size, about a minute (also IMITATE_QUICKSTART_TINY=1)")
    quick.add_argument("--workers", type=int, default=2, metavar="W",
                       help="demo recording processes (default: 2)")
    quick.add_argument("--seed", type=int, default=0, metavar="S", help="root seed (default: 0)")
    add_quiet(quick, "stage")
    quick.set_defaults(handler=_cmd_quickstart)
    return parser


def _message(error: Exception) -> str:
    """One line for an error: an operating-system error names its file and says what went
    wrong without Python's ``[Errno N]`` prefix (ours already read that way)."""
    if isinstance(error, OSError) and type(error).__str__ is OSError.__str__ and error.strerror:
        if error.filename is None:
            return error.strerror
        target = f" -> {error.filename2}" if error.filename2 is not None else ""
        return f"{error.filename}{target}: {error.strerror}"
    return str(error)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM, like Ctrl-C, raises ``KeyboardInterrupt`` (message ``SIGTERM``) while a command
    runs, so that it unwinds: worker pools are terminated, locks released and the command's
    resume hint printed, instead of the process vanishing and its workers dying on a broken
    pipe. ``imitate train`` installs its own handlers around its steps."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(number: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(number).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(error: KeyboardInterrupt, args: argparse.Namespace) -> str:
    """The line printed for an interrupt: its signal (or the command's own message) and, for a
    command that keeps finished work, how to go on (``on_interrupt`` in its defaults)."""
    line = f"imitate: interrupted{f': {error}' if str(error) else ''}"
    hint = getattr(args, "on_interrupt", None)
    return f"{line}; {hint}" if hint else line


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        with _sigterm_interrupts():
            args.handler(args)
    except BrokenPipeError:  # the reader went away (``imitate tasks | head -1``): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush
        return 0
    except (CommandError, ValueError, OSError) as error:
        print(f"imitate: error: {_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        print(_interrupted(error, args), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
