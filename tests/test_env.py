"""BlockStack-v0 against real PyBullet: API contract, seeding, episode end, rendering."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import constants as C
from envs.expert import NoisyExpert, observe
from envs.sim import camera_matrices
from envs.stack_env import BlockStackEnv

HOLD_STILL = np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)


def random_actions(steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-C.MAX_STEP, C.MAX_STEP, size=(steps, 4)).astype(np.float32)
    actions[:, 3] = rng.choice([-1.0, 1.0], size=steps)
    return actions


def rollout(env: gymnasium.Env, seed: int, actions: np.ndarray) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    trace = [np.concatenate([obs["blocks"].ravel(), obs["gripper"]])]
    for action in actions:
        obs, *_ = env.step(action)
        trace.append(np.concatenate([obs["blocks"].ravel(), obs["gripper"]]))
    return trace


@pytest.mark.parametrize("layout", ["ab", "ab cde", "abcdefghij", "c a db", "ji hg fe dc ba"])
def test_check_env_is_silent(layout: str) -> None:
    env = gymnasium.make("BlockStack-v0", task=layout, render_mode="rgb_array", render_size=64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    env.close()
    assert [str(w.message) for w in caught] == []


def test_gymnasium_make_registers_the_id() -> None:
    env = gymnasium.make("BlockStack-v0", task="ab cde")
    obs, info = env.reset(seed=0)
    assert env.unwrapped.task.layout == "ab cde"
    assert obs["blocks"].shape == (10, 3) and obs["blocks"].dtype == np.float32
    assert obs["block_mask"].tolist() == [1] * 5 + [0] * 5
    assert np.all(obs["blocks"][5:] == 0)
    assert info == {"is_success": False, "stage": 0, "num_stages": 3}
    env.close()


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="repeated"):
        BlockStackEnv(task="aab")
    with pytest.raises(ValueError, match="render_mode"):
        BlockStackEnv(task="ab", render_mode="video")
    with pytest.raises(ValueError, match="horizon_per_stage"):
        BlockStackEnv(task="ab", horizon_per_stage=0)
    env = BlockStackEnv(task="ab")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(HOLD_STILL)
    env.close()
    env.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        env.reset(seed=0)


def test_info_keys_on_every_step_and_failure_at_the_end() -> None:
    env = BlockStackEnv(task="ab c", horizon_per_stage=4)
    _, info = env.reset(seed=1)
    assert set(info) == {"is_success", "stage", "num_stages"}
    for action in random_actions(env.horizon, seed=2):
        _, reward, terminated, truncated, info = env.step(action)
        assert {"is_success", "stage", "num_stages"} <= set(info)
        assert reward == float(info["is_success"])
        assert ("failure" in info) == (terminated or truncated)
    assert env.elapsed_steps == 4 and truncated and not terminated
    assert info["failure"] == "recoverable_failure"
    env.close()


def test_same_seed_same_trajectory_even_after_other_episodes() -> None:
    actions = random_actions(60, seed=7)
    fresh = BlockStackEnv(task="ab cde")
    reference = rollout(fresh, 11, actions)
    fresh.close()
    used = BlockStackEnv(task="ab cde")
    rollout(used, 3, random_actions(40, seed=8))  # another episode first
    again = rollout(used, 11, actions)
    used.close()
    assert all(np.array_equal(a, b) for a, b in zip(reference, again, strict=True))
    assert not np.array_equal(reference[0], rollout(BlockStackEnv(task="ab cde"), 12, actions)[0])


def expert_trace(env: BlockStackEnv, task: str, seed: int, steps: int,
                 until_held: bool = False) -> np.ndarray:
    """(S, 10, 3) block observations of up to ``steps`` noisy-expert steps (contacts, grasps);
    with ``until_held``, stop as soon as a cube is held between the fingers."""
    obs, _ = env.reset(seed=seed, options={"task": task})
    expert = NoisyExpert(rng=np.random.default_rng(seed))
    trace = [obs["blocks"]]
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(expert.act(env)[0])
        trace.append(obs["blocks"])
        if terminated or truncated or (until_held and observe(env).held >= 0):
            break
    return np.array(trace)


def test_reset_keeps_the_robot_but_replays_a_fresh_world_bit_for_bit() -> None:
    """Reset reuses the loaded Panda (Sim.clear_except) instead of rebuilding it; episodes
    must still equal those of a fresh env, also after an episode cut off with a cube between the
    fingers."""
    fresh = BlockStackEnv(task="abc")
    reference = expert_trace(fresh, "ab cd", 21, 160)
    fresh.close()
    used = BlockStackEnv(task="abc")
    robot = None
    for task, seed, steps in (("abc", 5, 35), ("cab de", 7, 20), ("abcde", 6, 200)):
        trace = expert_trace(used, task, seed, steps, until_held=True)
        assert len(trace) > 10
        assert robot in (None, used.panda.body)
        robot = used.panda.body
    assert observe(used).held >= 0  # the last one cut off with a cube between the fingers
    again = expert_trace(used, "ab cd", 21, 160)
    bodies = used.sim.bodies
    used.close()
    assert np.array_equal(reference, again)
    assert list(bodies.values()).count(robot) == 1 and len(bodies) == 1 + 2 + 4  # table, floor


def test_two_envs_stepped_alternately_match_solo_runs() -> None:
    actions = random_actions(50, seed=5)
    solo = [rollout(BlockStackEnv(task="abc"), seed, actions) for seed in (1, 2)]
    left, right = BlockStackEnv(task="abc"), BlockStackEnv(task="abc")
    assert left.sim.client != right.sim.client
    traces = [[left.reset(seed=1)[0]], [right.reset(seed=2)[0]]]
    for action in actions:
        traces[0].append(left.step(action)[0])
        traces[1].append(right.step(action)[0])
    for trace, reference in zip(traces, solo, strict=True):
        flat = [np.concatenate([o["blocks"].ravel(), o["gripper"]]) for o in trace]
        assert all(np.array_equal(a, b) for a, b in zip(flat, reference, strict=True))
    left.close()
    right.close()


def test_initial_layout_is_inside_the_spawn_region_and_spaced() -> None:
    env = BlockStackEnv(task="abcdefghij")
    for seed in range(5):
        env.reset(seed=seed)
        pos = env.scene.read().positions
        assert np.all((pos[:, 0] >= C.SPAWN_X[0]) & (pos[:, 0] <= C.SPAWN_X[1]))
        assert np.all((pos[:, 1] >= C.SPAWN_Y[0]) & (pos[:, 1] <= C.SPAWN_Y[1]))
        assert np.allclose(pos[:, 2], C.CUBE_HALF, atol=1e-3)
        gaps = np.linalg.norm(pos[:, None, :2] - pos[None, :, :2], axis=-1)
        assert gaps[~np.eye(10, dtype=bool)].min() >= C.SPAWN_MIN_SPACING
    env.close()


def test_built_layout_terminates_with_success() -> None:
    env = BlockStackEnv(task="ab")
    env.reset(seed=0)
    bottom = env.scene.read().positions[1]
    env.unwrapped.scene.place(0, bottom + [0.0, 0.0, C.CUBE_SIZE])
    _, reward, terminated, truncated, info = env.step(HOLD_STILL)
    assert terminated and not truncated and reward == 1.0
    assert info["is_success"] and info["stage"] == 1 and info["failure"] is None
    env.close()


def test_wrong_tower_ends_as_wrong_move() -> None:
    env = BlockStackEnv(task="ab", horizon_per_stage=3)
    env.reset(seed=0)
    env.scene.place(1, env.scene.read().positions[0] + [0.0, 0.0, C.CUBE_SIZE])  # b on a
    for _ in range(3):
        _, _, terminated, truncated, info = env.step(HOLD_STILL)
    assert truncated and not terminated and info["failure"] == "wrong_move"
    env.close()


def test_cube_off_the_table_terminates_as_manipulation_failure() -> None:
    env = BlockStackEnv(task="abc")
    env.reset(seed=0)
    env.scene.place(2, [1.2, 0.0, 0.3])  # beyond the table's edge: it falls to the floor
    for _ in range(20):
        _, _, terminated, _, info = env.step(HOLD_STILL)
        if terminated:
            break
    assert terminated and info["failure"] == "manipulation_failure"
    env.close()


def test_action_is_clipped_to_the_maximum_step() -> None:
    env = BlockStackEnv(task="ab")
    env.reset(seed=0)
    start = env.panda.target.copy()
    env.step(np.array([1.0, -1.0, 0.0, 1.0], dtype=np.float32))
    assert np.allclose(env.panda.target - start, [C.MAX_STEP, -C.MAX_STEP, 0.0])
    env.close()


def test_last_action_is_the_action_given_and_none_after_a_reset() -> None:
    env = BlockStackEnv(task="ab")
    env.reset(seed=0)
    assert env.last_action is None
    given = np.array([1.0, -0.001, 0.0, -1.0], dtype=np.float32)
    env.step(given)
    np.testing.assert_array_equal(env.last_action, given)  # as given, before clipping
    given[0] = 0.5  # a copy: the caller's array may change
    assert env.last_action[0] == 1.0
    env.reset(seed=1)
    assert env.last_action is None
    env.close()
    fresh = BlockStackEnv(task="ab")
    with pytest.raises(RuntimeError, match="reset"):
        fresh.block_pixels()
    fresh.close()


def _closest_palette_letter(pixel: np.ndarray) -> str:
    """Letter whose cube colour, under a brightness factor in [0.4, 1.1], is closest to pixel."""
    best, best_distance = "", np.inf
    for letter, rgba in C.CUBE_COLORS.items():
        colour = np.array(rgba[:3]) * 255
        scale = np.clip(pixel @ colour / max(colour @ colour, 1e-9), 0.4, 1.1)
        distance = np.linalg.norm(pixel - scale * colour)
        if distance < best_distance:
            best, best_distance = letter, distance
    return best


def test_render_shows_every_cube_in_its_colour() -> None:
    env = BlockStackEnv(task="abcdefghij", render_mode="rgb_array")
    env.reset(seed=3)
    image = env.render()
    assert image.shape == (C.RENDER_SIZE, C.RENDER_SIZE, 3) and image.dtype == np.uint8
    view, proj = camera_matrices(1.0, C.CAMERA_TARGET, C.CAMERA_DISTANCE, C.CAMERA_YAW,
                                 C.CAMERA_PITCH, C.CAMERA_FOV)
    for slot, centre in enumerate(env.scene.read().positions):
        clip = proj @ view @ np.append(centre, 1.0)
        x, y = clip[:2] / clip[3]
        u, v = int((x + 1) / 2 * C.RENDER_SIZE), int((1 - y) / 2 * C.RENDER_SIZE)
        assert 0 <= u < C.RENDER_SIZE and 0 <= v < C.RENDER_SIZE
        assert _closest_palette_letter(image[v, u].astype(float)) == "abcdefghij"[slot]
    env.close()


def test_render_size_and_no_image_without_rgb_mode() -> None:
    env = BlockStackEnv(task="ab", render_mode="rgb_array", render_size=96)
    env.reset(seed=0)
    assert env.render().shape == (96, 96, 3)
    env.close()
    plain = BlockStackEnv(task="ab")
    plain.reset(seed=0)
    assert plain.render() is None
    plain.close()


def test_reset_option_switches_task() -> None:
    env = BlockStackEnv(task="ab")
    obs, info = env.reset(seed=0, options={"task": "abc de"})
    assert info["num_stages"] == 3 and int(obs["block_mask"].sum()) == 5
    assert env.horizon == 3 * C.HORIZON_PER_STAGE
    env.close()


def test_pybullet_prints_nothing() -> None:
    code = ("import envs, gymnasium; e = gymnasium.make('BlockStack-v0', task='ab cde'); "
            "e.reset(seed=0); e.step(e.action_space.sample()); e.close()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "" and done.stderr == ""


@pytest.mark.parametrize("modules", ["envs", "envs.tasks",
                                     "envs, envs.suite, envs.predicates, envs.expert"])
def test_importing_envs_does_not_import_pybullet(modules: str) -> None:
    code = f"import sys, {modules}; assert 'pybullet' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gymnasium_make_works_after_a_bare_import_envs() -> None:
    """The env is registered by its entry point; PyBullet comes in with the first env."""
    code = ("import sys, gymnasium, envs; assert 'pybullet' not in sys.modules; "
            "e = gymnasium.make('BlockStack-v0', task='abc'); e.reset(seed=0); "
            "assert 'pybullet' in sys.modules and envs.ScriptedExpert().act(e).shape == (4,); "
            "e.close()")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_envs_does_not_import_imitate() -> None:
    code = "import sys, envs; assert not any(m.startswith('imitate') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert envs.ENV_ID == "BlockStack-v0"
