"""The ``imitate eval`` command. It prints; ``imitate.evaluation`` and ``imitate.report`` do
the work.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from envs.predicates import FAILURE_CLASSES
from imitate import fast
from imitate.attention import attention_episode
from imitate.checkpoint import is_pretrained, load_checkpoint, read_checkpoint_bytes
from imitate.config_files import (
    CONFIG_FILE_NAME,
    accept_config_file,
    apply_config_file,
    write_config_file,
)
from imitate.evaluation import (
    LOG_NAME,
    SPLITS,
    EpisodeResult,
    EvalConfig,
    evaluate,
    use_one_inference_thread,
)
from imitate.files import folder_lock
from imitate.options import add_quiet
from imitate.render import render_episode
from imitate.report import OUTCOME_TITLES, stage_rows, write_report
from imitate.video import RENDER_EVERY, VIDEO_FPS
from imitate.workers import add_backend_options

_DEFAULTS = EvalConfig(checkpoint=Path("policy.pt"))
#: The report folder's writer lock (``imitate.files.folder_lock``).
EVAL_LOCK_NAME = ".eval.lock"


def add_eval_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``eval`` to the ``imitate`` sub-command set."""
    parser = commands.add_parser(
        "eval", help="evaluate a policy on suite tasks, labelled seen or unseen",
        description="Paper protocol (section 5.1): per task K episodes, each from a fresh seeded "
        "initial configuration and conditioned on an expert demo from the evaluation seed stream "
        "(never a training demo); greedy ensemble actions; the scripted expert runs from the "
        "same starts. Each task is labelled unseen (its class, the task up to relabelling of its "
        "blocks, is not among the checkpoint's training classes) or seen, and the tables group "
        "by that. Writes report.json, episodes.csv, summary.csv, report.md and two PNG plots to "
        "--out, and config.json: the options it ran with, for --config.")
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="PATH",
                        help="policy checkpoint, e.g. runs/NAME/policy.pt, or 'pretrained' for "
                        "the policy shipped with imitate (required, here or in --config)")
    parser.add_argument("--split", choices=SPLITS, default=_DEFAULTS.split,
                        help=f"suite tasks to evaluate (default: {_DEFAULTS.split})")
    parser.add_argument("--tasks", metavar="LAYOUTS",
                        help="comma-separated layouts instead of the split's tasks, "
                        "e.g. 'ab cd,abc'")
    parser.add_argument("--episodes-per-task", type=int, default=_DEFAULTS.episodes_per_task,
                        metavar="K", help=f"episodes per task (default: "
                        f"{_DEFAULTS.episodes_per_task}; the paper used 100)")
    parser.add_argument("--ensemble", type=int, default=_DEFAULTS.ensemble, metavar="E",
                        help=f"demo subsamples averaged per action (default: {_DEFAULTS.ensemble})")
    parser.add_argument("--workers", type=int, default=2, metavar="W",
                        help="episode processes (default: 2)")
    add_backend_options(parser, "episode")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed, metavar="S",
                        help=f"root seed of demos and initial configurations "
                        f"(default: {_DEFAULTS.seed})")
    parser.add_argument("--no-expert", action="store_true",
                        help="skip the scripted expert's run from each start (the Demo column)")
    parser.add_argument("--videos", type=int, default=0, metavar="N",
                        help="also write the first N episodes of each task as mp4 (demo and "
                        "rollout side by side) into OUT/videos (default: 0)")
    add_labels_option(parser)
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="report folder (default: eval-SPLIT next to the checkpoint; "
                        "eval-pretrained-SPLIT in the current folder for 'pretrained')")
    parser.add_argument("--compile", choices=("on", "off"), default="on",
                        help="run the policy's additive attention in the fused C++ kernel "
                        "(imitate.fast; built once per machine, about a minute) or the plain "
                        "eager code; where no compiler works it warns and runs eager "
                        "(default: on)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--restart", action="store_true",
                        help=f"discard the episode log ({LOG_NAME} in --out) and run every "
                        "episode again; without it, an evaluation of the same options resumes "
                        "where an interrupted one stopped, running only the episodes the log "
                        "lacks, and one of other options is refused")
    accept_config_file(
        parser, help_text=f"JSON file of option values, e.g. the {CONFIG_FILE_NAME} an evaluation "
        "writes into its report folder (what it ran). Its keys are the options' names without "
        "'--', with '_' for '-'; each value becomes the option's default, so a flag given on "
        "the command line wins (command line > FILE > built-in defaults), and --checkpoint may "
        "come from it. Paths in it are relative to the current folder, as typed")
    parser.set_defaults(handler=_cmd_eval, on_interrupt="the finished episodes are kept in "
                        "the episode log: the same command runs the rest")


def _add_episode_options(parser: argparse.ArgumentParser) -> None:
    """--seed, --episode and --ensemble: which ``imitate eval`` episode, and its ensemble."""
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="root seed, as in 'imitate eval --seed' (default: 0)")
    parser.add_argument("--episode", type=int, default=0, metavar="I",
                        help="episode index within the task (default: 0)")
    parser.add_argument("--ensemble", type=int, default=10, metavar="E",
                        help="demo subsamples averaged per action (default: 10)")


def add_render_command(commands: argparse._SubParsersAction) -> None:
    """Add ``render`` to the ``imitate`` sub-command set."""
    parser = commands.add_parser(
        "render", help="render an episode (demo and rollout side by side) as mp4",
        description="Renders episode --episode of 'imitate eval --seed S' for one task: the "
        "conditioning demo and the policy's rollout side by side. Above them: the goal layout "
        "as small towers and a legend of the block letters in their colours; under each view: "
        "the stages complete, the outcome at the end, the stage that comes next, the block in "
        "the hand and the step's discretised action (per-axis bin, gripper). Every --every-th "
        f"control step is rendered; the video plays at {VIDEO_FPS} frames/s.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, metavar="PATH",
                        help="policy checkpoint, or 'pretrained' for the shipped policy")
    source.add_argument("--expert", action="store_true",
                        help="render the scripted expert instead of a policy")
    parser.add_argument("--task", required=True, metavar="LAYOUT", help="e.g. 'ab cde'")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE.mp4")
    _add_episode_options(parser)
    parser.add_argument("--every", type=int, default=RENDER_EVERY, metavar="K",
                        help=f"render every K-th control step (default: {RENDER_EVERY})")
    parser.add_argument("--size", type=int, default=256, metavar="PX",
                        help="side of each view in pixels (default: 256)")
    parser.add_argument("--attention", action="store_true",
                        help="add a strip under the video: the fixed queries' weights over the "
                        "blocks and the temporal attention over the demo's frames behind each "
                        "action (see 'imitate attention')")
    add_labels_option(parser)
    add_quiet(parser, "progress (it has none)")
    parser.set_defaults(handler=_cmd_render)


def add_labels_option(parser: argparse.ArgumentParser) -> None:
    """``--labels``: letters over the cubes in videos."""
    parser.add_argument("--labels", action="store_true",
                        help="write each cube's letter over it in the video frames (placed by "
                        "the camera projection of the cube's centre)")


def add_attention_command(commands: argparse._SubParsersAction) -> None:
    """Add ``attention`` to the ``imitate`` sub-command set."""
    parser = commands.add_parser(
        "attention", help="heatmaps of what a policy attends to through an episode",
        description="Runs episode --episode of 'imitate eval --seed S' for one task (the same "
        "conditioning demo and start) and writes, in the paper's style (Figs. 8, 9, 13), PNG "
        "heatmaps against the control step: the two fixed queries' weights over the blocks, "
        "the temporal attention over the demo's frames (stage ends marked) at each LSTM step, "
        "the stage reached, and the demonstration network's neighborhood attention; every "
        "weight also goes to attention.npz.")
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="PATH",
                        help="policy checkpoint, or 'pretrained' for the shipped policy")
    parser.add_argument("--task", required=True, metavar="LAYOUT", help="e.g. 'ab cde'")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="folder for the figures (created)")
    _add_episode_options(parser)
    add_quiet(parser, "progress (it has none)")
    parser.set_defaults(handler=_cmd_attention)


def _cmd_attention(args: argparse.Namespace) -> None:
    use_one_inference_thread()
    result = attention_episode(args.checkpoint, args.task, args.out, seed=args.seed,
                               episode=args.episode, ensemble=args.ensemble)
    print(f"{args.task!r}, seed {args.seed}, episode {args.episode}: policy reached stage "
          f"{result.stage}/{result.num_stages} in {result.steps} steps, outcome "
          f"{result.outcome} ({result.seconds:.1f} s)")
    for path in result.files:
        print(f"  {path}")


def _cmd_render(args: argparse.Namespace) -> None:
    use_one_inference_thread()
    result = render_episode(None if args.expert else args.checkpoint, args.task, args.out,
                            seed=args.seed, episode=args.episode, ensemble=args.ensemble,
                            every=args.every, size=args.size, attention=args.attention,
                            labels=args.labels)
    print(f"{result.path}: {result.frames} frames, {'expert' if args.expert else 'policy'} "
          f"reached stage {result.stage}/{result.num_stages}, outcome {result.outcome} "
          f"({result.seconds:.1f} s)")


def _default_report_folder(checkpoint: Path, name: str) -> Path:
    """``eval-NAME`` next to the checkpoint; in the current folder for the shipped policy, whose
    folder inside the installed package may not be writable."""
    if is_pretrained(checkpoint):
        return Path(f"eval-pretrained-{name}")
    return checkpoint.parent / f"eval-{name}"


def _cmd_eval(args: argparse.Namespace) -> None:
    args = apply_config_file(args)  # --config FILE: command line > FILE > defaults
    tasks = None if args.tasks is None else tuple(t.strip() for t in args.tasks.split(","))
    out = args.out or _default_report_folder(args.checkpoint, "tasks" if tasks else args.split)
    config = EvalConfig(checkpoint=args.checkpoint, split=args.split, tasks=tasks,
                        episodes_per_task=args.episodes_per_task, ensemble=args.ensemble,
                        workers=args.workers, seed=args.seed, expert=not args.no_expert,
                        videos=args.videos, video_dir=out / "videos", labels=args.labels,
                        fused=args.compile == "on", backend=args.backend,
                        ray_address=args.ray_address)
    data = read_checkpoint_bytes(config.checkpoint)
    saved = load_checkpoint(config.checkpoint, data=data)
    total = len(config.task_list()) * config.episodes_per_task
    bar = tqdm(total=total, unit="episode", file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet or not sys.stderr.isatty())
    successes = ran = 0

    def update(result: EpisodeResult, _total: int) -> None:
        nonlocal successes, ran
        successes, ran = successes + result.success, ran + 1
        bar.update(1)
        bar.set_postfix_str(f"success {successes}/{ran}")

    def resume(done: int, total: int) -> None:
        bar.reset(total=total - done)
        tqdm.write(f"resuming: {done} of {total} episodes already done (in {out / LOG_NAME}; "
                   "--restart runs them all again)", file=sys.stdout)

    use_one_inference_thread()  # --workers 1 runs the episodes here (pool workers set their own)
    start = time.perf_counter()
    with folder_lock(out, EVAL_LOCK_NAME, "evaluation"):
        with bar, fast.using(config.fused) as attention:
            results = evaluate(config, on_episode=update, checkpoint_data=data,
                               log=out / LOG_NAME, restart=args.restart, on_resume=resume)
        seconds = time.perf_counter() - start
        timing = _timing(results, seconds, config.workers, ran)
        files = write_report(out, results, config=_config_json(config),
                             checkpoint={"path": str(config.checkpoint), "step": saved.step,
                                         "training": saved.training},
                             timing=timing)
        # the options it ran with, for 'imitate eval --config' (after the report: a failed
        # evaluation leaves the folder's earlier config.json whole)
        write_config_file(out / CONFIG_FILE_NAME, args, exclude=("restart",))
    rows = stage_rows(results)
    logged = f" ({ran} run now, {len(results) - ran} from {LOG_NAME})" if ran < len(results) else ""
    print(f"{config.checkpoint} (step {saved.step}): {len(results)} episodes{logged}, "
          f"{config.episodes_per_task} per task, ensemble {config.ensemble}, seed {config.seed}, "
          f"{seconds:.0f} s ({timing['episodes_per_s']:.2f} episodes/s, "
          f"{config.workers} workers, {attention.describe()})")
    print(f"{'tasks':<7} {'split':<6} {'stages':>6} {'episodes':>8} {'policy success':>16} "
          f"{'expert':>8}  failures ({' / '.join(OUTCOME_TITLES[f] for f in FAILURE_CLASSES)})")
    for row in rows:
        policy = row.outcomes["success"]
        expert = f"{100 * row.expert.value:.1f}%" if row.expert else "-"
        fails = " / ".join(str(row.outcomes[name].count) for name in FAILURE_CLASSES)
        print(f"{row.novelty:<7} {row.split:<6} {row.stages:>6} {row.episodes:>8} "
              f"{100 * policy.value:>15.1f}% {expert:>8}  {fails}")
    print("(unseen: the task's class, the task up to relabelling of its blocks, is not among the "
          "checkpoint's training classes)")
    videos = [r.video for r in results if r.video]
    if videos:
        print(f"videos: {len(videos)} in {out / 'videos'}")
    print(f"report: {files['html']} (also report.md, report.json, episodes.csv, summary.csv, "
          f"PNG plots, {CONFIG_FILE_NAME} in {out})")


def _timing(results: list[EpisodeResult], seconds: float, workers: int, ran: int
            ) -> dict[str, float | str]:
    """This invocation's wall time (s) and throughput over the ``ran`` episodes it ran, and where
    the episode time went: every episode's recorded seconds, summed over workers and over the
    earlier invocations whose episodes the log held. ``note`` says so in ``report.json``."""
    parts = {name: sum(getattr(r, f"{name}_seconds") for r in results)
             for name in ("policy", "env", "demo", "expert")}
    busy = sum(parts.values()) or 1.0
    return {"seconds": seconds, "workers": workers, "episodes_run": ran,
            "episodes_from_log": len(results) - ran,
            "episodes_per_s": ran / seconds if seconds > 0 else 0.0,
            **{f"{name}_seconds": value for name, value in parts.items()},
            **{f"{name}_share": value / busy for name, value in parts.items()},
            "note": "seconds, workers and episodes_per_s: this invocation, which ran "
            "episodes_run episodes; *_seconds and *_share: the recorded seconds of all "
            f"episodes, also the episodes_from_log read from {LOG_NAME} (run before an "
            "interruption)"}


def _config_json(config: EvalConfig) -> dict[str, object]:
    return {"checkpoint": str(config.checkpoint), "split": config.split,
            "tasks": list(config.tasks) if config.tasks else None,
            "episodes_per_task": config.episodes_per_task, "ensemble": config.ensemble,
            "workers": config.workers, "seed": config.seed, "expert": config.expert,
            "demo_noise": config.demo_noise(), "videos": config.videos,
            "labels": config.labels}
