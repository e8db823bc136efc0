"""Evaluation on suite tasks, each labelled seen or unseen, by the paper's protocol (section 5.1).

For every task and episode index ``i``:

1. a conditioning demonstration is recorded by the scripted expert (with the datasets' default
   execution noise) from the evaluation-demo seed stream (``Stream.EVAL_DEMO``), which is disjoint
   from the training-demo stream by construction, so it is never a training demo;
2. the policy runs greedily (ensemble of ``E`` temporal-dropout subsamples of that demo, action
   distributions averaged) from a fresh initial configuration drawn from the evaluation-episode
   stream (``Stream.EVAL_EPISODE``) until success, an irrecoverable state or the horizon;
3. the scripted expert runs, without noise, from the SAME initial configuration (the paper's
   "Demo" column).

Every task is labelled ``unseen`` (its class, the task up to relabelling of its blocks, is not
among the classes of the checkpoint's training tasks) or ``seen`` (``imitate.novelty``), whatever
split of the suite it comes from; reports group by that label.

Episode seeds depend only on (root seed, task layout, episode index), so the same arguments give
the same (task, seed) list, and two checkpoints can be compared episode by episode. Episodes run in
``workers`` spawn processes, each with its own env and a copy of the policy (1 torch thread each).

With a ``log`` (``evaluate(config, log=PATH)``; ``imitate eval`` keeps ``episodes.jsonl`` in its
report folder) every finished episode is appended to that file at once (``imitate.episode_log``),
under a header of what fixes the episodes (``log_header``). A later call with the same header runs
only the episodes missing from the log, so an interrupted evaluation resumes, and returns all of
them in the same order: the report equals an uninterrupted run's but for the seconds it records.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium
import torch

import envs
from envs.expert import DEFAULT_NOISE_STD, ScriptedExpert
from envs.tasks import TaskClass
from imitate import __version__, fast
from imitate.agent import agent_for_demo
from imitate.checkpoint import load_checkpoint, read_checkpoint_bytes
from imitate.data.record import DemoJob, env_kwargs, record_demo
from imitate.data.seeds import Stream, demo_seeds
from imitate.episode_log import appending, read_log
from imitate.episodes import Seconds, StepHook, play, reset
from imitate.novelty import UNKNOWN, novelty, trained_classes
from imitate.options import require_positive_ints
from imitate.video import RENDER_EVERY, FrameRecorder, compose, write_mp4
from imitate.workers import check_backend, job_runner

logger = logging.getLogger(__name__)

SPLITS = ("train", "test", "all")
#: The episode log's name in an ``imitate eval`` report folder (``evaluate(log=...)``).
LOG_NAME = "episodes.jsonl"
#: Attempts allowed to record one conditioning demo before the evaluation gives up.
DEMO_ATTEMPTS = 50


class EvaluationError(ValueError):
    """An evaluation that cannot go on (message says why); the CLI prints it as one line."""


@dataclass(frozen=True)
class EvalConfig:
    """Parameters of ``imitate eval``; validated on construction (``ValueError``).

    Attributes:
        checkpoint: the policy checkpoint (``policy.pt``).
        split: suite tasks to evaluate: ``train``, ``test`` or ``all`` (whether a task is unseen
            depends on the checkpoint's training tasks, not on its split).
        tasks: layouts to evaluate instead of the split's suite tasks (any valid layouts).
        episodes_per_task: K episodes per task (paper: 100).
        ensemble: E demo subsamples averaged per action (paper: 10).
        workers: episode processes (>= 1; with the ``process`` backend 1 runs in this process).
        seed: root seed of the conditioning demos and the initial configurations.
        expert: also run the scripted expert from each episode's initial configuration.
        noise: execution noise of the conditioning demos (m per step); None: the datasets'
            default (``envs.expert.DEFAULT_NOISE_STD``).
        videos: the first ``videos`` episodes of each task are also written as mp4 (demo and
            rollout side by side) into ``video_dir``.
        video_dir: folder for those videos (required when ``videos`` > 0).
        labels: those videos write each cube's letter over it (``imitate.video``).
        fused: the policy's additive attention runs the fused kernel (``imitate.fast``: built
            once per machine, about a minute; where it cannot be built, a warning and the eager
            code, which computes the same numbers).
        backend: where the workers run: ``process`` (this machine's spawn pool) or ``ray`` (Ray
            actors; ``imitate.workers``); both give the same episodes.
        ray_address: the Ray cluster to join (``auto``: the running one; ``HOST:PORT``);
            None starts a local Ray instance. Used by the ``ray`` backend only.
    """

    checkpoint: Path
    split: str = "test"
    tasks: tuple[str, ...] | None = None
    episodes_per_task: int = 10
    ensemble: int = 10
    workers: int = 1
    seed: int = 0
    expert: bool = True
    noise: float | None = None
    videos: int = 0
    video_dir: Path | None = None
    labels: bool = False
    fused: bool = True
    backend: str = "process"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoint", Path(self.checkpoint))
        if self.split not in SPLITS:
            raise ValueError(f"unknown --split {self.split!r}; choose {', '.join(SPLITS)}")
        require_positive_ints(self, ("episodes_per_task", "ensemble", "workers"))
        check_backend(self.backend, self.ray_address)
        if self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed}")
        if self.noise is not None and not (math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"--noise must be a finite std >= 0, got {self.noise}")
        if self.tasks is not None and not self.tasks:
            raise ValueError("--tasks lists no task")
        if self.videos < 0:
            raise ValueError(f"--videos must be >= 0, got {self.videos}")
        if self.videos and self.video_dir is None:
            raise ValueError("videos need a video_dir")
        if self.labels and not self.videos:
            raise ValueError("--labels draws letters on videos: it needs --videos N")

    def task_list(self) -> list[tuple[str, str]]:
        """(split, layout) pairs to evaluate, in a fixed order; ``ValueError`` on a bad layout."""
        if self.tasks is not None:
            layouts = [envs.parse_task(text).layout for text in self.tasks]
            repeated = sorted({x for x in layouts if layouts.count(x) > 1})
            if repeated:
                raise ValueError(f"--tasks lists {repeated[0]!r} more than once")
            suite = envs.load_suite()
            train = {task.layout for task in suite.train}
            test = {task.layout for task in suite.test}
            return [("train" if x in train else "test" if x in test else "other", x)
                    for x in layouts]
        suite = envs.load_suite()
        splits = ("train", "test") if self.split == "all" else (self.split,)
        return [(split, task.layout) for split in splits for task in suite.split(split)]

    def demo_noise(self) -> float:
        return DEFAULT_NOISE_STD if self.noise is None else float(self.noise)


class EpisodeJob(NamedTuple):
    """One evaluation episode: episode ``episode`` of ``layout`` (``novelty``: ``seen``,
    ``unseen`` or ``unknown`` for the checkpoint under evaluation)."""

    split: str
    layout: str
    episode: int
    root_seed: int
    ensemble: int
    expert: bool
    noise: float
    video_dir: str | None = None
    novelty: str = UNKNOWN
    labels: bool = False


@dataclass
class EpisodeResult:
    """What happened in one episode (and in the expert's run from the same start).

    ``novelty``: ``unseen`` when the task's class is not among the checkpoint's training classes,
    ``seen`` when it is, ``unknown`` when the checkpoint does not record its training tasks;
    ``stage``: stages complete at the end; ``failure``: None on success, else a failure class;
    ``steps``: control steps; seconds: ``policy`` (demo embedding and action choice), ``env``
    (simulation steps), ``demo`` (recording the conditioning demo), ``expert`` (the expert's run).
    """

    split: str
    task: str
    num_stages: int
    episode: int
    env_seed: int
    demo_env_seed: int
    demo_steps: int
    success: bool
    failure: str | None
    stage: int
    steps: int
    expert_success: bool | None
    expert_failure: str | None
    policy_seconds: float
    env_seconds: float
    demo_seconds: float
    expert_seconds: float
    video: str | None = None
    novelty: str = UNKNOWN


def episode_jobs(config: EvalConfig, trained: frozenset[TaskClass] | None = None
                 ) -> list[EpisodeJob]:
    """Every episode of the evaluation, in report order (task, then episode index); ``trained``:
    the checkpoint's training classes (None: unknown), which label each task seen or unseen."""
    noise = config.demo_noise()
    video_dir = str(config.video_dir) if config.video_dir is not None else None
    return [EpisodeJob(split, layout, episode, config.seed, config.ensemble, config.expert, noise,
                       video_dir if episode < config.videos else None, novelty(layout, trained),
                       config.labels)
            for split, layout in config.task_list()
            for episode in range(config.episodes_per_task)]


def run_policy(env: Any, agent_factory: Callable[[], Any], layout: str, env_seed: int,
               on_step: StepHook | None = None) -> tuple[dict[str, Any], int, float, float]:
    """Run an agent greedily for one episode; returns (last info, steps, policy s, env s).

    The policy seconds include making the agent (embedding the demo). ``on_step(env, info,
    done)`` hears the reset and every step (for example to render)."""
    seconds = Seconds()
    start = time.perf_counter()
    agent = agent_factory()
    seconds.actor += time.perf_counter() - start
    observation, info = reset(env, layout, env_seed, on_step, seconds)
    episode = play(env, lambda obs: (agent.act(obs), None), observation, info, on_step=on_step,
                   seconds=seconds)
    return episode.info, episode.steps, seconds.actor, seconds.env


def run_expert(env: Any, expert: Any, layout: str, env_seed: int,
               on_step: StepHook | None = None) -> dict[str, Any]:
    """The clean expert from ``env_seed``'s initial configuration; returns the last info."""
    observation, info = reset(env, layout, env_seed, on_step)
    return play(env, lambda _: (expert.act(env), None), observation, info,
                on_step=on_step).info


def record_conditioning_demo(env: Any, expert: Any, layout: str, episode: int, root_seed: int,
                             noise: float, recorders: list | None = None,
                             every: int | None = None, labels: bool = False) -> Any:
    """The conditioning demo of an evaluation episode (``Stream.EVAL_DEMO``); when
    ``recorders`` is a list, a fresh ``FrameRecorder`` per attempt is appended to it (the last
    one rendered the demo returned), keeping every ``every``-th frame (``labels``: with each
    cube's letter over it)."""
    def new_recorder() -> StepHook:
        recorders[:] = [FrameRecorder(every=every or RENDER_EVERY, labels=labels)]  # last only
        return recorders[-1]

    recorded = record_demo(env, expert, DemoJob(0, layout, episode, Stream.EVAL_DEMO, root_seed,
                                                noise, DEMO_ATTEMPTS),
                           on_attempt=None if recorders is None else new_recorder)
    if recorded.demo is None:
        raise EvaluationError(f"the expert failed {DEMO_ATTEMPTS} times to demonstrate "
                              f"{layout!r} (episode {episode}, seed {root_seed})")
    return recorded


def run_episode(policy: Any, env: Any, expert: Any, job: EpisodeJob) -> EpisodeResult:
    """One evaluation episode (see the module docstring for the protocol)."""
    demo_frames: list | None = [] if job.video_dir else None
    recorded = record_conditioning_demo(env, expert, job.layout, job.episode, job.root_seed,
                                        job.noise, demo_frames, labels=job.labels)
    demo = recorded.demo
    seeds = demo_seeds(job.root_seed, Stream.EVAL_EPISODE, job.layout, job.episode)

    def make_agent() -> Any:
        return agent_for_demo(policy, demo, ensemble=job.ensemble, seed=seeds.noise_seed)

    episode_frames = FrameRecorder(labels=job.labels) if job.video_dir else None
    info, steps, policy_seconds, env_seconds = run_policy(env, make_agent, job.layout,
                                                          seeds.env_seed, episode_frames)
    video = None
    if job.video_dir is not None and demo_frames and episode_frames is not None:
        outcome = "success" if info["is_success"] else str(info.get("failure"))
        name = (f"{job.layout.replace(' ', '_')}-s{job.root_seed}-ep{job.episode:03d}-"
                f"{outcome}.mp4")
        frames = compose(job.layout, [("demo", demo_frames[-1]), ("policy", episode_frames)])
        video = str(write_mp4(Path(job.video_dir) / name, frames))
    expert_info: dict[str, Any] = {}
    start = time.perf_counter()
    if job.expert:
        expert_info = run_expert(env, expert, job.layout, seeds.env_seed)
    expert_seconds = time.perf_counter() - start
    return EpisodeResult(
        split=job.split, task=job.layout, num_stages=int(info["num_stages"]),
        episode=job.episode, env_seed=seeds.env_seed, demo_env_seed=demo.env_seed,
        demo_steps=demo.steps, success=bool(info["is_success"]), failure=info.get("failure"),
        stage=int(info["stage"]), steps=steps,
        expert_success=bool(expert_info["is_success"]) if job.expert else None,
        expert_failure=expert_info.get("failure") if job.expert else None,
        policy_seconds=policy_seconds, env_seconds=env_seconds, demo_seconds=recorded.seconds,
        expert_seconds=expert_seconds, video=video, novelty=job.novelty)


def use_one_inference_thread() -> None:
    """Run torch on 1 thread in this process. Per-step inference is many small operations: 1
    thread is fastest, and several threads slow to a crawl when other processes hold the cores
    (as evaluation workers, or a second training lane, do)."""
    torch.set_num_threads(1)


# --- workers -----------------------------------------------------------------------------------
def _episode_worker(checkpoint: bytes, fused: bool, pooled: bool) -> tuple[Any, Any, Any]:
    """A worker's policy (from the checkpoint's bytes), env (renders on demand) and expert; pool
    workers run torch on 1 thread each."""
    if pooled:
        use_one_inference_thread()
    fast.configure(fused)  # a cached build: the parent process built it
    policy = load_checkpoint("policy.pt", data=checkpoint).policy
    env = gymnasium.make(envs.ENV_ID, render_mode="rgb_array", **env_kwargs())
    return policy, env, ScriptedExpert()


def _run_episode(worker: tuple[Any, Any, Any], job: EpisodeJob) -> EpisodeResult:
    return run_episode(*worker, job)


def _close_worker(worker: tuple[Any, Any, Any]) -> None:
    worker[1].close()


@contextlib.contextmanager
def episode_runner(checkpoint: bytes, workers: int, fused: bool = False, *,
                   backend: str = "process", ray_address: str | None = None
                   ) -> Iterator[Callable[[list[EpisodeJob]], Iterator[EpisodeResult]]]:
    """Map jobs to results (completion order): in-process for 1 worker, else spawn workers
    (``imitate.workers``), each loading the policy from the checkpoint's bytes. ``fused``: the
    policy's attention runs the fused kernel (``imitate.fast``; built here, before any worker
    starts, when needed). ``backend`` and ``ray_address``: ``imitate.workers.job_runner``'s."""
    with fast.using(fused) as attention:  # this process's path is restored afterwards
        fused = attention.path == "compiled"
        with job_runner(workers, _episode_worker, (checkpoint, fused), _run_episode,
                        _close_worker, backend=backend, ray_address=ray_address) as run:
            yield run


def log_header(config: EvalConfig, checkpoint_data: bytes) -> dict[str, Any]:
    """What fixes the episodes of ``config`` run by the checkpoint whose bytes are
    ``checkpoint_data``: the episode log's header, compared field by field before a log resumes.

    ``imitate`` (the version), ``checkpoint_sha256`` (of those bytes), ``split`` (None when
    ``tasks`` name the tasks), ``tasks`` (the parsed layouts, or None), ``episodes_per_task``,
    ``ensemble``, ``seed``, ``expert``, ``demo_noise`` (m per step), ``videos`` and, when
    set, ``labels`` (absent otherwise, so logs written before 0.11 resume). Not
    ``workers``: an episode's result depends on its job only, never on the process that ran it.
    Not ``backend`` nor ``ray_address``: where the workers run, also the speed only.
    Not ``fused``: the fused kernel computes the eager attention's numbers up to float rounding
    (``imitate.fast``), and the two paths chose the same greedy action at each of 540 steps (6
    episodes of the shipped policy, ensemble 10); like ``workers``, it sets the speed only.
    """
    tasks = None if config.tasks is None else [layout for _, layout in config.task_list()]
    return {"imitate": __version__,
            "checkpoint_sha256": hashlib.sha256(checkpoint_data).hexdigest(),
            "split": config.split if tasks is None else None, "tasks": tasks,
            "episodes_per_task": config.episodes_per_task, "ensemble": config.ensemble,
            "seed": config.seed, "expert": config.expert, "demo_noise": config.demo_noise(),
            "videos": config.videos, **({"labels": True} if config.labels else {})}


def logged_results(log: Path, header: dict[str, Any]) -> dict[tuple[str, int], EpisodeResult]:
    """The results in the episode log ``log`` (``imitate.episode_log.read_log``, checked
    against ``header``) by (layout, episode), less those whose video is not on disk: those run
    again."""
    results = {}
    for result in read_log(log, header, EpisodeResult):
        if result.video is not None and not Path(result.video).is_file():
            logger.warning("%s: video %s is missing; episode %d of %r runs again", log,
                           result.video, result.episode, result.task)
            continue
        results[(result.task, result.episode)] = result
    return results


def evaluate(config: EvalConfig, on_episode: Callable[[EpisodeResult, int], None] | None = None,
             checkpoint_data: bytes | None = None, log: Path | None = None, restart: bool = False,
             on_resume: Callable[[int, int], None] | None = None) -> list[EpisodeResult]:
    """Run every episode (or, with a ``log``, every episode it lacks); results come back in
    ``episode_jobs`` order.

    ``on_episode(result, total)`` hears each episode this call runs (completion order; ``total``:
    how many it runs). ``checkpoint_data``: the checkpoint's bytes, already read and validated by
    the caller (every worker then uses exactly them, even if the file is being rewritten).
    Without them the file is read here. Either way it is validated before any work
    (``CheckpointError``, a ``ValueError``, for a missing or bad one), and its training tasks
    label each task seen or unseen.

    ``log``: the episode log (``imitate.episode_log``) to resume from and to append each finished
    episode to (created when absent). Its episodes are not run again, but for one whose video is
    not on disk. A log whose header is not ``log_header(config, checkpoint_data)`` is refused
    (``EpisodeLogError``, a ``ValueError``, naming the first differing field) unless
    ``restart``, which discards it. ``on_resume(done, total)`` hears, before any episode runs,
    that an existing log holds ``done`` of the ``total`` episodes (not called for a new or
    restarted log).
    """
    if checkpoint_data is None:
        checkpoint_data = read_checkpoint_bytes(config.checkpoint)
    saved = load_checkpoint(config.checkpoint, data=checkpoint_data)  # fail fast, clear message
    jobs = episode_jobs(config, trained_classes(saved.training))
    results: list[EpisodeResult | None] = [None] * len(jobs)
    if log is None:
        return _run_missing(config, checkpoint_data, jobs, results, on_episode)
    header = log_header(config, checkpoint_data)
    resuming = Path(log).exists() and not restart
    if resuming:
        logged = logged_results(log, header)
        results = [logged.get((job.layout, job.episode)) for job in jobs]
        if on_resume is not None:
            on_resume(len(jobs) - results.count(None), len(jobs))
    with appending(log, header, [r for r in results if r is not None]) as append:
        return _run_missing(config, checkpoint_data, jobs, results, on_episode, append)


def _run_missing(config: EvalConfig, checkpoint_data: bytes, jobs: list[EpisodeJob],
                 results: list[EpisodeResult | None],
                 on_episode: Callable[[EpisodeResult, int], None] | None,
                 append: Callable[[EpisodeResult], None] | None = None) -> list[EpisodeResult]:
    """Run the jobs whose result is None (``append`` hears each result first, then
    ``on_episode``); returns every result, in ``jobs`` order."""
    order = {(job.layout, job.episode): i for i, job in enumerate(jobs)}
    missing = [job for job, result in zip(jobs, results, strict=True) if result is None]
    if missing:
        with episode_runner(checkpoint_data, min(config.workers, len(missing)), config.fused,
                            backend=config.backend, ray_address=config.ray_address) as run:
            for result in run(missing):
                if append is not None:
                    append(result)
                results[order[(result.task, result.episode)]] = result
                if on_episode is not None:
                    on_episode(result, len(missing))
    return [r for r in results if r is not None]
