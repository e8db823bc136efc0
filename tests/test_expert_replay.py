"""The scripted expert's actions, step for step, against actions recorded from expert version 3.

``tests/data/expert_actions_v3.npz`` holds the clean actions the expert returned on a sample of
``benchmarks/expert.py`` episodes (same tasks, seeds and execution modes as its jobs), recorded
before ``envs/expert.py`` was split into the ``envs.expert`` package. Any change to what the
expert returns, however small, fails this test; a deliberate change must bump
``EXPERT_VERSION`` and re-record the sample:

    python tests/test_expert_replay.py --write
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from envs.expert import DEFAULT_NOISE_STD, EXPERT_VERSION, ScriptedExpert, noisy_action
from envs.stack_env import BlockStackEnv
from imitate.actions import snap

SAMPLE = Path(__file__).parent / "data" / f"expert_actions_v{EXPERT_VERSION}.npz"
#: (mode, stages, episode index) of the sampled benchmark jobs (benchmarks/expert.py, seed 0).
EPISODES = (("clean", 1, 0), ("clean", 2, 1), ("clean", 3, 0), ("clean", 4, 2),
            ("clean", 6, 0), ("noisy", 3, 1), ("noisy", 5, 0), ("snapped", 2, 0),
            ("snapped", 4, 1))


def benchmark_job(mode: str, num_stages: int, index: int) -> tuple[str, int]:
    """The task and seed ``benchmarks/expert.py`` (defaults) gives this job."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    try:
        from expert import tasks_with_stages
    finally:
        sys.path.pop(0)
    tasks = tasks_with_stages(num_stages, 0)
    return tasks[index % len(tasks)], 1000 * num_stages + index


def expert_actions(env: BlockStackEnv, mode: str, task: str, seed: int) -> np.ndarray:
    """(steps, 4) float32: the clean actions the expert returns over one benchmark episode."""
    expert = ScriptedExpert()
    rng = np.random.default_rng(seed)
    env.reset(seed=seed, options={"task": task})
    returned = []
    while True:
        action = expert.act(env)
        returned.append(action)
        if mode == "noisy":
            action = noisy_action(action, DEFAULT_NOISE_STD, rng)
        elif mode == "snapped":
            action = snap(action)
        *_, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            return np.stack(returned).astype(np.float32)


def key(mode: str, num_stages: int, index: int) -> str:
    return f"{mode}-{num_stages}-{index}"


@pytest.fixture(scope="module")
def env():
    world = BlockStackEnv(task="ab")
    yield world
    world.close()


@pytest.mark.parametrize("mode,num_stages,index", EPISODES, ids=[key(*e) for e in EPISODES])
def test_the_expert_returns_the_recorded_actions_step_for_step(env, mode, num_stages, index):
    recorded = np.load(SAMPLE)[key(mode, num_stages, index)]
    task, seed = benchmark_job(mode, num_stages, index)
    actions = expert_actions(env, mode, task, seed)
    assert actions.shape == recorded.shape, f"{task!r} seed {seed}: episode length changed"
    differing = np.flatnonzero(np.any(actions != recorded, axis=1))
    assert not len(differing), f"{task!r} seed {seed}: first differing step {differing[:1]}"


def write_sample() -> None:
    """Record the sample from the expert as it is now."""
    world = BlockStackEnv(task="ab")
    arrays = {}
    for episode in EPISODES:
        task, seed = benchmark_job(*episode)
        arrays[key(*episode)] = expert_actions(world, episode[0], task, seed)
        print(key(*episode), task, seed, len(arrays[key(*episode)]), "steps")
    world.close()
    SAMPLE.parent.mkdir(exist_ok=True)
    np.savez_compressed(SAMPLE, **arrays)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/test_expert_replay.py --write")
    write_sample()
