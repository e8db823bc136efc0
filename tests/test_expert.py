"""The scripted expert in the simulator: success, recovery, determinism; failure classes."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs import constants as C
from envs.expert import (
    DEFAULT_NOISE_STD,
    NoisyExpert,
    ScriptedExpert,
    free_spot,
    noisy_action,
    observe,
)
from envs.stack_env import BlockStackEnv
from imitate.actions import snap

Executor = Callable[[np.ndarray, np.random.Generator], np.ndarray]
EXECUTORS: dict[str, Executor] = {
    "clean": lambda action, rng: action,
    "noisy": lambda action, rng: noisy_action(action, DEFAULT_NOISE_STD, rng),
    "snapped": lambda action, rng: snap(action),
}


def run(env: BlockStackEnv, execute: Executor, seed: int,
        hook: Callable[[BlockStackEnv, int], None] | None = None) -> dict:
    """Run the expert to the end of the episode; ``hook(env, step)`` may perturb the world."""
    expert = ScriptedExpert()
    rng = np.random.default_rng(seed)
    step = 0
    while True:
        if hook is not None:
            hook(env, step)
        _, _, terminated, truncated, info = env.step(execute(expert.act(env), rng))
        step += 1
        if terminated or truncated:
            info["steps"] = step
            return info


def table_xyz(env: BlockStackEnv, block: int) -> np.ndarray:
    """A free table position (m) for ``block``, away from the other cubes."""
    positions = env.scene.read().positions
    xy = free_spot(positions, {block}, positions[block, :2])
    return np.array([xy[0], xy[1], C.TABLE_TOP_Z + C.CUBE_HALF])


@pytest.fixture(scope="module")
def env() -> BlockStackEnv:
    environment = BlockStackEnv(task="ab")
    yield environment
    environment.close()


@pytest.mark.parametrize("mode", ["clean", "noisy", "snapped"])
@pytest.mark.parametrize(("task", "seed"), [("ab cd", 11), ("abcd", 12), ("cb ade", 13)])
def test_expert_solves_tasks(env: BlockStackEnv, mode: str, task: str, seed: int) -> None:
    env.reset(seed=seed, options={"task": task})
    info = run(env, EXECUTORS[mode], seed)
    assert info["is_success"], info
    assert info["failure"] is None
    assert info["steps"] < env.horizon


def test_expert_accepts_a_wrapped_env_and_keeps_no_state() -> None:
    wrapped = gym.make(envs.ENV_ID, task="abc")
    try:
        wrapped.reset(seed=3)
        expert = ScriptedExpert()
        first = expert.act(wrapped)
        assert first.dtype == np.float32 and first.shape == (4,)
        assert wrapped.action_space.contains(first)
        np.testing.assert_array_equal(ScriptedExpert().act(wrapped), first)
        np.testing.assert_array_equal(expert.act(wrapped), first)
    finally:
        wrapped.close()


def test_held_cube_teleported_back_to_the_table(env: BlockStackEnv) -> None:
    env.reset(seed=21, options={"task": "abc"})
    done = []

    def drop_once(e: BlockStackEnv, step: int) -> None:
        view = observe(e)
        if not done and view.held >= 0 and view.positions[view.held, 2] > 0.06:
            e.scene.place(view.held, table_xyz(e, view.held))
            done.append(step)

    info = run(env, EXECUTORS["clean"], 21, drop_once)
    assert done, "the expert never lifted a cube"
    assert info["is_success"], info


def test_top_of_finished_tower_knocked_to_the_table(env: BlockStackEnv) -> None:
    env.reset(seed=22, options={"task": "abc de"})
    done = []

    def knock_once(e: BlockStackEnv, step: int) -> None:
        view = observe(e)
        if not done and view.correct[0] and view.held >= 0:  # carrying the next cube
            e.scene.place(0, table_xyz(e, 0))  # a, the top of the finished tower abc
            done.append(step)

    info = run(env, EXECUTORS["clean"], 22, knock_once)
    assert done, "tower abc was never finished"
    assert info["is_success"], info


def test_expert_recovers_from_random_actions(env: BlockStackEnv) -> None:
    """DAgger asks the expert about states a learner reached: start from a random walk."""
    env.reset(seed=23, options={"task": "abc"})
    rng = np.random.default_rng(23)
    for _ in range(40):
        action = rng.uniform(-1, 1, size=4).astype(np.float32)
        action[:3] *= C.MAX_STEP
        env.step(action)
    info = run(env, EXECUTORS["clean"], 23)
    assert info["is_success"], info


def test_cube_on_a_wrong_support_is_unstacked_first(env: BlockStackEnv) -> None:
    env.reset(seed=24, options={"task": "abc"})
    positions = env.scene.read().positions
    env.scene.place(1, positions[0] + np.array([0, 0, C.CUBE_SIZE]))  # b on a: wrong
    info = run(env, EXECUTORS["clean"], 24)
    assert info["is_success"], info


def test_wrong_cube_in_hand_is_set_down(env: BlockStackEnv) -> None:
    """While b is carried to c, a lands on c: b is set down, a unstacked, then the task done."""
    env.reset(seed=25, options={"task": "abc"})
    events: list[str] = []

    def block_target(e: BlockStackEnv, step: int) -> None:
        view = observe(e)
        if not events and view.held == 1 and view.positions[1, 2] > 0.08:
            e.scene.place(0, view.positions[2] + np.array([0, 0, C.CUBE_SIZE]))
            events.append("a on c")
        elif events == ["a on c"] and view.held < 0 and not e.panda.gripper_closed:
            positions = e.scene.read().positions
            if abs(positions[1, 2] - C.CUBE_HALF) < 0.003:  # b back on the table
                events.append("b set down")

    info = run(env, EXECUTORS["clean"], 25, block_target)
    assert events == ["a on c", "b set down"], events
    assert info["is_success"], info


def test_same_seed_same_trajectory() -> None:
    def trajectory() -> tuple[list[np.ndarray], list[np.ndarray]]:
        environment = BlockStackEnv(task="abc")
        try:
            obs, _ = environment.reset(seed=5)
            noisy = NoisyExpert(rng=np.random.default_rng(5))
            actions, observations = [], [obs["blocks"].copy()]
            for _ in range(150):
                executed, clean = noisy.act(environment)
                actions.append(np.concatenate([executed, clean]))
                obs, _, terminated, truncated, _ = environment.step(executed)
                observations.append(obs["blocks"].copy())
                if terminated or truncated:
                    break
            return actions, observations
        finally:
            environment.close()

    first, second = trajectory(), trajectory()
    assert len(first[0]) == len(second[0])
    for a, b in zip(first[0] + first[1], second[0] + second[1], strict=True):
        assert a.tobytes() == b.tobytes()


def test_noisy_action_keeps_the_label_and_the_gripper() -> None:
    clean = np.array([0.019, -0.02, 0.0, -1.0], dtype=np.float32)
    kept = clean.copy()
    executed = noisy_action(clean, 0.01, np.random.default_rng(0))
    np.testing.assert_array_equal(clean, kept)
    assert executed[3] == -1.0
    assert np.all(np.abs(executed[:3]) <= C.MAX_STEP)
    assert not np.array_equal(executed[:3], clean[:3])
    np.testing.assert_array_equal(noisy_action(clean, 0.0, np.random.default_rng(0)), clean)
    with pytest.raises(ValueError):
        noisy_action(clean, -1.0, np.random.default_rng(0))


# --- Failure classes at episode end, built by teleporting cubes -----------------------------------
def _short_env(task: str) -> BlockStackEnv:
    environment = BlockStackEnv(task=task, horizon_per_stage=3)
    environment.reset(seed=0)
    return environment


def _idle_to_end(environment: BlockStackEnv) -> dict:
    hold = np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)
    for _ in range(environment.horizon + 1):
        _, _, terminated, truncated, info = environment.step(hold)
        if terminated or truncated:
            return info
    raise AssertionError("the episode did not end")


def _layout(environment: BlockStackEnv, spots: dict[int, tuple[float, float, int]]) -> None:
    """Teleport cubes: block -> (x, y, level) with level 0 on the table."""
    for block, (x, y, level) in spots.items():
        z = C.TABLE_TOP_Z + C.CUBE_HALF + level * C.CUBE_SIZE
        environment.scene.place(block, np.array([x, y, z]))


def test_failure_wrong_move() -> None:
    environment = _short_env("abc")
    try:
        _layout(environment, {2: (0.45, 0.0, 0), 0: (0.45, 0.0, 1), 1: (0.45, 0.2, 0)})
        info = _idle_to_end(environment)
        assert info["failure"] == "wrong_move" and not info["is_success"]
    finally:
        environment.close()


def test_failure_manipulation_when_a_cube_leaves_the_table() -> None:
    environment = _short_env("abc")
    try:
        _layout(environment, {0: (1.3, 0.0, 0)})  # beyond the table's edge: it falls
        info = _idle_to_end(environment)
        assert info["failure"] == "manipulation_failure" and not info["is_success"]
    finally:
        environment.close()


def test_failure_recoverable_on_timeout_with_a_compatible_layout() -> None:
    environment = _short_env("abc")
    try:
        _layout(environment, {2: (0.45, 0.0, 0), 1: (0.45, 0.0, 1), 0: (0.45, 0.2, 0)})
        info = _idle_to_end(environment)
        assert info["failure"] == "recoverable_failure" and info["stage"] == 1
    finally:
        environment.close()


def test_no_failure_on_success() -> None:
    environment = _short_env("abc")
    try:
        _layout(environment, {2: (0.45, 0.0, 0), 1: (0.45, 0.0, 1), 0: (0.45, 0.0, 2)})
        info = _idle_to_end(environment)
        assert info["is_success"] and info["failure"] is None
    finally:
        environment.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["clean", "noisy", "snapped"])
def test_expert_success_over_many_suite_episodes(mode: str) -> None:
    suite = envs.load_suite()
    tasks = [t for t in suite.train + suite.test][::4]
    environment = BlockStackEnv(task="ab")
    try:
        failures = []
        for i, task in enumerate(tasks):
            environment.reset(seed=1000 + i, options={"task": task})
            info = run(environment, EXECUTORS[mode], 1000 + i)
            if not info["is_success"]:
                failures.append((task.layout, 1000 + i, info["failure"]))
        assert len(failures) <= 0.03 * len(tasks), failures
    finally:
        environment.close()
