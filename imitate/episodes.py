"""The one episode loop: an actor steps ``BlockStack-v0`` until the episode ends or a stop rule.

Demo recording (``imitate.data.record``), DAgger collection (``imitate.dagger``), evaluation,
rendering and attention maps (``imitate.evaluation``) all run their episodes through ``play``. An
*actor* maps the current observation to ``(executed, label)``: the action the env is stepped with
and the action recorded as the label (the clean expert action for demos and DAgger; ``None`` when
nothing is labelled). ``pack_demo`` turns a played episode into a stored ``Demo``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imitate.data import format as fmt

#: ``on_step(env, info, done)``: hears the reset and every step (for example to render frames).
StepHook = Callable[[Any, dict[str, Any], bool], None]
#: ``actor(observation) -> (executed, label)``, both (4,) actions or the label None.
Actor = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray | None]]


@dataclass
class Seconds:
    """Wall seconds spent choosing actions (``actor``) and simulating (``env``: resets, steps)."""

    actor: float = 0.0
    env: float = 0.0


@dataclass
class Episode:
    """What ``play`` saw: ``observations`` and ``stages`` start with the state played from and
    gain one entry per step; ``executed`` and ``labels`` hold one action per step (labels None
    where the actor labels nothing). ``info`` is the last step's (the start's when no step was
    taken); ``done``: the env terminated or truncated; ``reached``: the stop rule fired."""

    observations: list[dict[str, np.ndarray]]
    stages: list[int]
    executed: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray | None] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    reached: bool = False

    @property
    def steps(self) -> int:
        return len(self.executed)


def reset(env: Any, layout: str, env_seed: int, on_step: StepHook | None = None,
          seconds: Seconds | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Reset ``env`` to task ``layout`` from seed ``env_seed``; returns (observation, info)."""
    start = time.perf_counter()
    observation, info = env.reset(seed=env_seed, options={"task": layout})
    if seconds is not None:
        seconds.env += time.perf_counter() - start
    if on_step is not None:
        on_step(env, info, False)
    return observation, info


def play(env: Any, actor: Actor, observation: dict[str, np.ndarray], info: dict[str, Any], *,
         max_steps: int | None = None, until: Callable[[dict[str, Any]], bool] | None = None,
         on_step: StepHook | None = None, seconds: Seconds | None = None) -> Episode:
    """Step ``env`` with ``actor`` from its current state (``observation``, ``info``).

    Stops when the env terminates or truncates, when ``until(info)`` holds after a step, or
    after ``max_steps`` steps (None: no limit besides the env's horizon).
    """
    seconds = seconds if seconds is not None else Seconds()
    episode = Episode([observation], [int(info["stage"])], info=info)
    while max_steps is None or episode.steps < max_steps:
        start = time.perf_counter()
        executed, label = actor(observation)
        middle = time.perf_counter()
        observation, _, terminated, truncated, info = env.step(executed)
        seconds.actor += middle - start
        seconds.env += time.perf_counter() - middle
        episode.observations.append(observation)
        episode.stages.append(int(info["stage"]))
        episode.executed.append(np.asarray(executed, dtype=np.float32))
        episode.labels.append(None if label is None else np.asarray(label, dtype=np.float32))
        episode.info, episode.done = info, bool(terminated or truncated)
        episode.reached = until is not None and bool(until(info))
        if on_step is not None:
            on_step(env, info, episode.done)
        if episode.done or episode.reached:
            break
    return episode


def pack_demo(episode: Episode, *, task: str, index: int, attempt: int, success: bool,
              env_seed: int, noise_seed: int) -> fmt.Demo:
    """A played, labelled episode as a stored ``Demo`` (observations as float32/int8 arrays)."""
    observations = episode.observations
    stages = np.asarray(episode.stages, dtype=np.int8)
    return fmt.Demo(
        task=task, index=index, attempt=attempt, success=success, env_seed=env_seed,
        noise_seed=noise_seed,
        blocks=np.stack([o["blocks"] for o in observations]).astype(np.float32),
        block_mask=np.stack([o["block_mask"] for o in observations]).astype(np.int8),
        gripper=np.stack([o["gripper"] for o in observations]).astype(np.float32),
        stages=stages,
        actions=np.stack(episode.executed).astype(np.float32),
        labels=np.stack(episode.labels).astype(np.float32),
        stage_ends=fmt.stage_ends(stages, int(episode.info["num_stages"])),
    )
