"""Recording demos: one expert rollout, retries up to an attempt cap, and worker processes.

``rollout`` runs one seeded episode; ``record_demo`` retries with the next attempt's seeds until an
episode succeeds; ``demo_runner`` maps ``DemoJob``s to ``DemoResult``s in this process (one worker)
or in a spawn-context pool whose workers each own one ``BlockStack-v0`` env and expert (no shared
PyBullet state). Results depend only on the job, never on the worker that ran it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from imitate.data import format as fmt
from imitate.data.seeds import DemoSeeds, Stream, demo_seeds


def env_kwargs() -> dict[str, Any]:
    """Keyword arguments every recording env is made with (written to the manifest)."""
    from envs import constants

    return {"horizon_per_stage": constants.HORIZON_PER_STAGE}


@dataclass
class RolloutTiming:
    """Seconds spent in ``expert.act`` and in ``env.step`` / ``env.reset`` during rollouts."""

    expert: float = 0.0
    env: float = 0.0


def rollout(env: Any, expert: Any, layout: str, seeds: DemoSeeds, noise: float, *,
            index: int = 0, attempt: int = 0, timing: RolloutTiming | None = None,
            on_step: Callable[[Any, dict[str, Any], bool], None] | None = None) -> fmt.Demo:
    """Run the expert for one episode of ``layout`` and return it as a ``Demo``.

    Executed actions are ``noisy_action(clean, noise, rng)`` with ``rng`` seeded by
    ``seeds.noise_seed``; the labels are the clean actions. The episode ends when the env
    terminates or truncates; ``success`` is the last ``info["is_success"]``. ``on_step(env, info,
    done)`` is called after the reset and after every step (for example to render frames).
    """
    from envs.expert import noisy_action

    timing = timing if timing is not None else RolloutTiming()
    rng = np.random.default_rng(seeds.noise_seed)
    start = time.perf_counter()
    observation, info = env.reset(seed=seeds.env_seed, options={"task": layout})
    timing.env += time.perf_counter() - start
    if on_step is not None:
        on_step(env, info, False)
    observations, stages, actions, labels = [observation], [info["stage"]], [], []
    while True:
        start = time.perf_counter()
        clean = expert.act(env)
        executed = noisy_action(clean, noise, rng)
        middle = time.perf_counter()
        observation, _, terminated, truncated, info = env.step(executed)
        timing.expert += middle - start
        timing.env += time.perf_counter() - middle
        observations.append(observation)
        stages.append(info["stage"])
        actions.append(executed)
        labels.append(clean)
        if on_step is not None:
            on_step(env, info, terminated or truncated)
        if terminated or truncated:
            break
    stage_array = np.asarray(stages, dtype=np.int8)
    return fmt.Demo(
        task=layout, index=index, attempt=attempt, success=bool(info["is_success"]),
        env_seed=seeds.env_seed, noise_seed=seeds.noise_seed,
        blocks=np.stack([o["blocks"] for o in observations]).astype(np.float32),
        block_mask=np.stack([o["block_mask"] for o in observations]).astype(np.int8),
        gripper=np.stack([o["gripper"] for o in observations]).astype(np.float32),
        stages=stage_array,
        actions=np.stack(actions).astype(np.float32),
        labels=np.stack(labels).astype(np.float32),
        stage_ends=fmt.stage_ends(stage_array, int(info["num_stages"])),
    )


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
    timing: RolloutTiming


def record_demo(env: Any, expert: Any, job: DemoJob,
                on_attempt: Callable[[], Callable[[Any, dict[str, Any], bool], None]] | None = None
                ) -> DemoResult:
    """Roll out attempts 0, 1, ... of ``job`` until one succeeds or ``max_attempts`` fail.

    ``on_attempt()``, when given, is called before each attempt and returns that attempt's
    ``on_step`` hook (see ``rollout``)."""
    start = time.perf_counter()
    timing = RolloutTiming()
    for attempt in range(job.max_attempts):
        seeds = demo_seeds(job.root_seed, Stream(job.stream), job.layout, job.index, attempt)
        demo = rollout(env, expert, job.layout, seeds, job.noise, index=job.index,
                       attempt=attempt, timing=timing,
                       on_step=None if on_attempt is None else on_attempt())
        if demo.success:
            return DemoResult(job, demo, attempt + 1, time.perf_counter() - start, timing)
    return DemoResult(job, None, job.max_attempts, time.perf_counter() - start, timing)


def make_env_and_expert() -> tuple[Any, Any]:
    """A fresh ``BlockStack-v0`` env (``env_kwargs()``) and ``ScriptedExpert``."""
    import gymnasium

    import envs
    from envs.expert import ScriptedExpert

    return gymnasium.make(envs.ENV_ID, **env_kwargs()), ScriptedExpert()


_WORKER: tuple[Any, Any] | None = None


def _init_worker() -> None:
    global _WORKER
    _WORKER = make_env_and_expert()


def _work(job: DemoJob) -> DemoResult:
    assert _WORKER is not None, "worker not initialised"
    return record_demo(*_WORKER, job)


@contextlib.contextmanager
def demo_runner(workers: int) -> Iterator[Callable[[list[DemoJob]], Iterator[DemoResult]]]:
    """A function mapping jobs to results (completion order): in-process for 1 worker, else a
    spawn-context pool whose workers each own one env."""
    if workers == 1:
        env, expert = make_env_and_expert()
        try:
            yield lambda jobs: (record_demo(env, expert, job) for job in jobs)
        finally:
            env.close()
        return
    with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
        yield lambda jobs: pool.imap_unordered(_work, jobs, chunksize=1)
