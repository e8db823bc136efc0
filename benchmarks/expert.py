"""Success rate, control steps per stage and wall time of the scripted expert, by number of stages.

Three ways of executing the expert's actions: ``clean`` (as returned), ``noisy`` (plus DART-style
Gaussian noise, ``--noise`` m per step, the label stays clean) and ``snapped`` (every action snapped
to the policy's discrete action set, ``imitate.actions``). For each stage count, ``--episodes``
seeded episodes cycle through the tasks of suite ``--suite-version`` (default 1, the suite the
README's figures and logs were measured on) with that many stages (training and test tasks; 9
stages: single towers of 10 cubes in seeded random orders). Episode ``i`` of stage count ``k``
uses seed ``--seed + 1000 * k + i``, so runs are reproducible and failures can be replayed.

With ``--log FILE`` every finished episode is appended to FILE (one JSON object per line); run the
same command again after an interruption and the episodes already in FILE are not run again (the
summary covers them all). A log written by another expert version is refused.

    python benchmarks/expert.py [--episodes 100] [--stages 1 2 ... 9] [--modes clean noisy snapped]
                                [--workers 2] [--noise 0.003] [--seed 0] [--log FILE]
                                [--suite-version 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import envs
from envs.expert import DEFAULT_NOISE_STD, EXPERT_VERSION, ScriptedExpert, noisy_action
from envs.stack_env import BlockStackEnv
from envs.tasks import BLOCK_LETTERS
from imitate.actions import snap

MODES = ("clean", "noisy", "snapped")


@dataclass(frozen=True)
class Job:
    mode: str
    num_stages: int
    index: int
    task: str
    seed: int
    noise: float


@dataclass(frozen=True)
class Outcome:
    job: Job
    success: bool
    failure: str | None
    steps: int
    seconds: float


#: The suite whose tasks the README's expert figures (and ``runs/expert-v3.jsonl``) used.
DEFAULT_SUITE_VERSION = 1


def tasks_with_stages(num_stages: int, seed: int,
                      suite_version: int = DEFAULT_SUITE_VERSION) -> list[str]:
    """Layouts with ``num_stages`` stages: the suite's, or random 10-cube towers for 9 stages."""
    suite = envs.load_suite(suite_version)
    tasks = [t.layout for t in suite.train + suite.test if t.num_stages == num_stages]
    if num_stages == 9:
        rng = np.random.default_rng(seed)
        tasks = ["abcdefghij"] + ["".join(rng.permutation(list(BLOCK_LETTERS))) for _ in range(19)]
    if not tasks:
        raise ValueError(f"no task with {num_stages} stages")
    return tasks


_ENV = None


def run_episode(job: Job) -> Outcome:
    """One seeded episode of the expert in this process's env."""
    global _ENV
    if _ENV is None:
        _ENV = BlockStackEnv(task=job.task)
    env = _ENV
    expert = ScriptedExpert()
    rng = np.random.default_rng(job.seed)
    start = time.perf_counter()
    env.reset(seed=job.seed, options={"task": job.task})
    info: dict = {}
    steps = 0
    while True:
        action = expert.act(env)
        if job.mode == "noisy":
            action = noisy_action(action, job.noise, rng)
        elif job.mode == "snapped":
            action = snap(action)
        _, _, terminated, truncated, info = env.step(action)
        steps += 1
        if terminated or truncated:
            break
    return Outcome(job, bool(info["is_success"]), info.get("failure"), steps,
                   time.perf_counter() - start)


def read_log(path: Path, expert_version: int) -> dict[Job, Outcome]:
    """Outcomes already logged in ``path`` (JSON lines), by job. A line cut short by an
    interruption is skipped; a line of another expert version raises ``SystemExit``."""
    done: dict[Job, Outcome] = {}
    if not path.exists():
        return done
    text = path.read_text()
    if text and not text.endswith("\n"):  # cut short: new lines must not join the broken one
        with path.open("a") as log:
            log.write("\n")
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            record = json.loads(line)
            job = Job(**record["job"])
        except (json.JSONDecodeError, KeyError, TypeError):
            print(f"{path}:{number}: unreadable line skipped", file=sys.stderr)
            continue
        if record.get("expert_version") != expert_version:
            raise SystemExit(f"{path} holds episodes of expert version "
                             f"{record.get('expert_version')}, this is version {expert_version}: "
                             "give another --log")
        done[job] = Outcome(job, record["success"], record["failure"], record["steps"],
                            record["seconds"])
    return done


def append_log(path: Path, outcome: Outcome, expert_version: int) -> None:
    """Append one episode to the log and flush it to disk."""
    record = {"expert_version": expert_version, "job": asdict(outcome.job),
              "success": outcome.success, "failure": outcome.failure, "steps": outcome.steps,
              "seconds": outcome.seconds}
    with path.open("a") as log:
        log.write(json.dumps(record) + "\n")
        log.flush()
        os.fsync(log.fileno())


def make_jobs(args: argparse.Namespace) -> list[Job]:
    jobs = []
    for mode in args.modes:
        for k in args.stages:
            tasks = tasks_with_stages(k, args.seed + k, args.suite_version)
            for i in range(args.episodes):
                jobs.append(Job(mode, k, i, tasks[i % len(tasks)], args.seed + 1000 * k + i,
                                args.noise))
    return jobs


def summarize(outcomes: list[Outcome]) -> str:
    groups: dict[tuple[str, int], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[(o.job.mode, o.job.num_stages)].append(o)
    lines = [
        "| mode | stages | episodes | success | steps/stage (successes) | s/episode | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    for (mode, k), group in sorted(groups.items(), key=lambda kv: (MODES.index(kv[0][0]),
                                                                     kv[0][1])):
        ok = [o for o in group if o.success]
        rate = 100.0 * len(ok) / len(group)
        per_stage = np.mean([o.steps / k for o in ok]) if ok else float("nan")
        wall = np.mean([o.seconds for o in group])
        fails = Counter(o.failure for o in group if not o.success)
        fail_text = ", ".join(f"{name}: {n}" for name, n in sorted(fails.items())) or "-"
        lines.append(f"| {mode} | {k} | {len(group)} | {rate:.1f}% | {per_stage:.1f} | "
                     f"{wall:.2f} | {fail_text} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100, help="episodes per stage count")
    parser.add_argument("--stages", type=int, nargs="+", default=list(range(1, 10)))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noise", type=float, default=None,
                        help="noise std for the noisy mode (m); default: the dataset default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--suite-version", type=int, default=DEFAULT_SUITE_VERSION,
                        help="suite whose tasks the episodes cycle through (default: "
                        f"{DEFAULT_SUITE_VERSION}, the one the README's figures used)")
    parser.add_argument("--log", type=Path, default=None,
                        help="JSON-lines file of finished episodes: appended to, and resumed from")
    args = parser.parse_args(argv)
    if args.noise is None:
        args.noise = DEFAULT_NOISE_STD
    jobs = make_jobs(args)
    done = read_log(args.log, EXPERT_VERSION) if args.log is not None else {}
    outcomes: list[Outcome] = [done[job] for job in jobs if job in done]
    todo = [job for job in jobs if job not in done]
    if outcomes:
        print(f"{len(outcomes)} of {len(jobs)} episodes read from {args.log}", file=sys.stderr)
    start = time.perf_counter()

    def progress(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if args.log is not None:
            append_log(args.log, outcome, EXPERT_VERSION)
        failed = sum(not o.success for o in outcomes)
        elapsed = time.perf_counter() - start
        sys.stderr.write(f"\r{len(outcomes)}/{len(jobs)} episodes, {failed} failed, "
                         f"{elapsed:.0f} s   ")
        sys.stderr.flush()
        if not outcome.success:
            j = outcome.job
            sys.stderr.write(f"\nFAIL {j.mode} task={j.task!r} seed={j.seed} "
                             f"failure={outcome.failure} steps={outcome.steps}\n")

    if args.workers <= 1:
        for job in todo:
            progress(run_episode(job))
    elif todo:
        with mp.get_context("spawn").Pool(args.workers) as pool:
            for outcome in pool.imap_unordered(run_episode, todo, chunksize=1):
                progress(outcome)
    sys.stderr.write("\n")
    print(f"noise std {args.noise} m; {len(todo)} episodes in {time.perf_counter() - start:.0f} s "
          f"with {args.workers} worker(s), {len(jobs) - len(todo)} read from the log")
    print(summarize(outcomes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
