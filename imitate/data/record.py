"""Recording demos: one expert rollout, retries up to an attempt cap, and worker processes.

``rollout`` runs one seeded episode (``imitate.episodes.play``); ``record_demo`` retries with the
next attempt's seeds until an episode succeeds; ``demo_runner`` maps ``DemoJob``s to
``DemoResult``s in this process (one worker) or in spawn workers that each own one
``BlockStack-v0`` env and expert (``imitate.workers``). Results depend only on the job, never on the
worker that ran it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium
import numpy as np

import envs
from envs import constants
from envs.expert import ScriptedExpert, noisy_action
from imitate.data import format as fmt
from imitate.data.seeds import DemoSeeds, Stream, demo_seeds
from imitate.episodes import Seconds, StepHook, pack_demo, play, reset
from imitate.workers import Runner, job_runner


def env_kwargs() -> dict[str, Any]:
    """Keyword arguments every recording env is made with (written to the manifest)."""
    return {"horizon_per_stage": constants.HORIZON_PER_STAGE}


def rollout(env: Any, expert: Any, layout: str, seeds: DemoSeeds, noise: float, *,
            index: int = 0, attempt: int = 0, seconds: Seconds | None = None,
            on_step: StepHook | None = None) -> fmt.Demo:
    """Run the expert for one episode of ``layout`` and return it as a ``Demo``.

    Executed actions are ``noisy_action(clean, noise, rng)`` with ``rng`` seeded by
    ``seeds.noise_seed``; the labels are the clean actions. The episode ends when the env
    terminates or truncates; ``success`` is the last ``info["is_success"]``. ``seconds`` adds
    the time spent in the expert (``actor``) and the env; ``on_step(env, info, done)`` is called
    after the reset and after every step (for example to render frames).
    """
    rng = np.random.default_rng(seeds.noise_seed)

    def noisy_expert(_: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        clean = expert.act(env)
        return noisy_action(clean, noise, rng), clean

    observation, info = reset(env, layout, seeds.env_seed, on_step, seconds)
    episode = play(env, noisy_expert, observation, info, on_step=on_step, seconds=seconds)
    return pack_demo(episode, task=layout, index=index, attempt=attempt,
                     success=bool(episode.info["is_success"]), env_seed=seeds.env_seed,
                     noise_seed=seeds.noise_seed)


class DemoJob(NamedTuple):
    """One demo to record: demo ``index`` of task ``layout`` (``task_index`` in the dataset)."""

    task_index: int
    layout: str
    index: int
    stream: int
    root_seed: int
    noise: float
    max_attempts: int


@dataclass
class DemoResult:
    """A recorded demo (``None`` when every attempt failed), with its attempt count and timing."""

    job: DemoJob
    demo: fmt.Demo | None
    attempts: int
    seconds: float
    timing: Seconds


def record_demo(env: Any, expert: Any, job: DemoJob,
                on_attempt: Callable[[], StepHook] | None = None) -> DemoResult:
    """Roll out attempts 0, 1, ... of ``job`` until one succeeds or ``max_attempts`` fail.

    ``on_attempt()``, when given, is called before each attempt and returns that attempt's
    ``on_step`` hook (see ``rollout``)."""
    start = time.perf_counter()
    timing = Seconds()
    for attempt in range(job.max_attempts):
        seeds = demo_seeds(job.root_seed, Stream(job.stream), job.layout, job.index, attempt)
        demo = rollout(env, expert, job.layout, seeds, job.noise, index=job.index,
                       attempt=attempt, seconds=timing,
                       on_step=None if on_attempt is None else on_attempt())
        if demo.success:
            return DemoResult(job, demo, attempt + 1, time.perf_counter() - start, timing)
    return DemoResult(job, None, job.max_attempts, time.perf_counter() - start, timing)


def make_env_and_expert() -> tuple[Any, Any]:
    """A fresh ``BlockStack-v0`` env (``env_kwargs()``) and ``ScriptedExpert``."""
    return gymnasium.make(envs.ENV_ID, **env_kwargs()), ScriptedExpert()


def demo_runner(workers: int, *, backend: str = "process", ray_address: str | None = None
                ) -> contextlib.AbstractContextManager[Runner]:
    """A function mapping ``DemoJob``s to ``DemoResult``s (completion order): in-process for 1
    worker, else workers that each own one env and expert, in a spawn pool or on Ray
    (``imitate.workers.job_runner``)."""
    return job_runner(workers, _recorder, (), _record, _close_recorder, backend=backend,
                      ray_address=ray_address)


def _recorder(pooled: bool) -> tuple[Any, Any]:
    return make_env_and_expert()


def _record(recorder: tuple[Any, Any], job: DemoJob) -> DemoResult:
    return record_demo(*recorder, job)


def _close_recorder(recorder: tuple[Any, Any]) -> None:
    recorder[0].close()
