"""Videos a viewer can read: the legend and goal over the views, the next stage, the held block
and the action under each view, letters over the cubes. Real PyBullet episodes and frames."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import pybullet as pb
import pytest
from conftest import one_line_error, run_cli
from PIL import Image
from test_eval import read_video

import envs
from envs import constants as C
from envs.expert import ScriptedExpert
from envs.sim import camera_matrices
from imitate import actions
from imitate.episodes import play, reset
from imitate.overlay import (
    FOOTER,
    ViewState,
    block_rgb,
    footer_layout,
    footer_strip,
    gauge_cell,
    header_layout,
    header_strip,
    label_blocks,
)
from imitate.video import FrameRecorder, compose, write_mp4

TASK = "abc"  # two stages: B on C, then A on B
SIZE = 256


def centre(box: tuple[int, int, int, int]) -> tuple[int, int]:
    """A pixel inside a chip's fill, clear of its outline and of its letter (top-left corner)."""
    return box[1] + 2, box[0] + 2  # (row, column)


@pytest.fixture(scope="module")
def expert_episode() -> tuple[FrameRecorder, list[np.ndarray | None]]:
    """The clean expert building ``TASK``, every 3rd step rendered; beside it, the env's last
    action at each kept frame, read by a second hook."""
    env = gymnasium.make(envs.ENV_ID, render_mode="rgb_array", render_size=SIZE, task=TASK)
    recorder = FrameRecorder(every=3)
    seen: list[np.ndarray | None] = []
    expert = ScriptedExpert()

    def hook(env_: object, info: dict, done: bool) -> None:
        before = len(recorder.frames)
        recorder(env_, info, done)
        if len(recorder.frames) > before:
            last = env.unwrapped.last_action
            seen.append(None if last is None else last.copy())

    try:
        observation, info = reset(env, TASK, 11, hook)
        episode = play(env, lambda _: (expert.act(env), None), observation, info, on_step=hook)
    finally:
        env.close()
    assert episode.info["is_success"]
    return recorder, seen


@pytest.fixture(scope="module")
def frames(expert_episode: tuple[FrameRecorder, list]) -> list[np.ndarray]:
    recorder, _ = expert_episode
    return compose(TASK, [("demo", recorder), ("expert", recorder)])


def footer_of(frame: np.ndarray, column: int) -> np.ndarray:
    top = header_layout(TASK).height + SIZE
    return frame[top:top + FOOTER, column * SIZE:(column + 1) * SIZE]


def test_every_frame_carries_the_legend_and_the_goal(frames: list[np.ndarray]) -> None:
    layout = header_layout(TASK)
    assert frames[0].shape == (layout.height + SIZE + FOOTER, 2 * SIZE, 3)
    assert set(layout.legend) == set(layout.goal) == {"a", "b", "c"}
    for frame in frames:
        for letter in "abc":
            assert tuple(frame[centre(layout.legend[letter])]) == block_rgb(letter)
            assert tuple(frame[centre(layout.goal[letter])]) == block_rgb(letter)
    # The goal is the tower drawn bottom-up: C at the bottom, B on it, A on top.
    goal = layout.goal
    assert goal["c"][1] > goal["b"][1] > goal["a"][1]
    assert goal["a"][0] == goal["b"][0] == goal["c"][0]


def test_footers_follow_the_next_stage_and_the_held_block(
        expert_episode: tuple[FrameRecorder, list], frames: list[np.ndarray]) -> None:
    recorder, _ = expert_episode
    layout = footer_layout(SIZE)
    held_during = {0: set(), 1: set()}
    for frame, shown in zip(frames, recorder.frames, strict=False):
        footer = footer_of(frame, 1)
        if shown.stage < 2:
            source, target = [("b", "c"), ("a", "b")][shown.stage]
            assert tuple(footer[centre(layout.next_source)]) == block_rgb(source)
            assert tuple(footer[centre(layout.next_target)]) == block_rgb(target)
            held_during[shown.stage].add(shown.held)
        if shown.held >= 0:
            assert tuple(footer[centre(layout.held)]) == block_rgb("abc"[shown.held])
        else:
            assert tuple(footer[centre(layout.held)]) != block_rgb("a")
    # The expert carries B for the first stage and A for the second; the footer saw both.
    assert held_during[0] == {-1, 1} and held_during[1] == {-1, 0}


def test_the_action_gauge_lights_the_bins_of_each_step(
        expert_episode: tuple[FrameRecorder, list], frames: list[np.ndarray]) -> None:
    recorder, seen = expert_episode
    layout = footer_layout(SIZE)
    assert seen[0] is None and recorder.frames[0].action is None  # the reset
    lit_bins = set()
    for frame, shown, action in zip(frames, recorder.frames, seen, strict=False):
        if action is None:
            continue
        expected = actions.to_bins(action)
        np.testing.assert_array_equal(shown.action, expected)
        footer = footer_of(frame, 1)
        for axis in range(3):
            for index in range(actions.NUM_BINS):
                x0, y0, _, _ = gauge_cell(layout, axis, index)
                pixel = footer[y0 + 2, x0 + 2]
                assert (pixel.sum() > 300) == (index == expected[axis]), (axis, index)
            lit_bins.add(int(expected[axis]))
    assert len(lit_bins) > 3  # the expert moved at several speeds


def test_narrow_views_scale_the_strips_down() -> None:
    header = header_strip(TASK, 128)
    view = ViewState("policy", 1, True, "success", 0, np.array([0, 7, 14, 1]))
    footer = footer_strip(TASK, view, 64)
    assert header.shape == (header_layout(TASK).height // 4, 128, 3)
    assert footer.shape == (FOOTER // 4, 64, 3)
    assert footer.std() > 10 and header.std() > 10


def silhouettes(env: object) -> np.ndarray:
    """The renderer's segmentation mask (H, W) of body ids, from the env's own camera."""
    base = env.unwrapped
    view, proj = camera_matrices(1.0, C.CAMERA_TARGET, C.CAMERA_DISTANCE, C.CAMERA_YAW,
                                 C.CAMERA_PITCH, C.CAMERA_FOV)
    _, _, _, _, mask = pb.getCameraImage(SIZE, SIZE, view.T.ravel().tolist(),
                                         proj.T.ravel().tolist(), renderer=pb.ER_TINY_RENDERER,
                                         physicsClientId=base.sim.client)
    return np.asarray(mask).reshape(SIZE, SIZE)


def test_labels_sit_on_their_cubes() -> None:
    env = gymnasium.make(envs.ENV_ID, render_mode="rgb_array", render_size=SIZE, task="ab cd")
    try:
        env.reset(seed=5)
        base = env.unwrapped
        image, mask = env.render(), silhouettes(env)
        pixels = base.block_pixels()
        labelled = label_blocks(image, pixels, "abcd")
        changed = np.any(labelled != image, axis=-1)
        rows, cols = np.mgrid[:SIZE, :SIZE]
        for slot, body in enumerate(base.scene.cubes):
            cube = mask == body
            cube_centre = np.array([cols[cube].mean(), rows[cube].mean()]) + 0.5
            assert np.linalg.norm(pixels[slot] - cube_centre) < 3.0, slot
            near = changed & (np.hypot(cols + 0.5 - pixels[slot][0],
                                       rows + 0.5 - pixels[slot][1]) < 12)
            letter_centre = np.array([cols[near].mean(), rows[near].mean()]) + 0.5
            assert np.linalg.norm(letter_centre - cube_centre) < 4.0, slot
        # A recorder with labels draws them onto what the env renders, nowhere else.
        recorder = FrameRecorder(labels=True)
        recorder(env, {"stage": 0}, False)
        np.testing.assert_array_equal(recorder.frames[0].image, labelled)
    finally:
        env.close()


def test_the_legend_survives_h264(frames: list[np.ndarray], tmp_path: Path) -> None:
    video = write_mp4(tmp_path / "abc.mp4", frames[:10])
    decoded = read_video(video)
    layout = header_layout(TASK)
    for letter in "abc":
        x0, y0, _, y1 = layout.legend[letter]
        patch = decoded[5][y0 + 2:y1 - 1, x0 + 2:x0 + 5].reshape(-1, 3).astype(float)
        assert np.abs(patch.mean(0) - block_rgb(letter)).max() < 40, letter


def test_render_and_eval_take_labels(tiny_policy: Path, tmp_path: Path) -> None:
    out = tmp_path / "labelled.mp4"
    done = run_cli("render", "--expert", "--task", "ab", "--out", str(out), "--every", "20",
                   "--labels")
    assert done.returncode == 0, done.stderr
    plain = tmp_path / "plain.mp4"
    assert run_cli("render", "--expert", "--task", "ab", "--out", str(plain), "--every",
                   "20").returncode == 0
    labelled, unlabelled = read_video(out), read_video(plain)
    assert len(labelled) == len(unlabelled)
    header = header_layout("ab").height
    assert np.abs(labelled[0][:header].astype(int) - unlabelled[0][:header]).max() < 8
    assert np.abs(labelled[0][header:].astype(int) - unlabelled[0][header:]).max() > 100
    one_line_error(run_cli("eval", "--checkpoint", str(tiny_policy), "--tasks", "ab",
                           "--labels", "--out", str(tmp_path / "report")), "--labels",
                   "--videos")


def test_attention_figures_carry_the_goal_and_the_legend(tiny_policy: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "maps"
    done = run_cli("attention", "--checkpoint", str(tiny_policy), "--task", "ba", "--ensemble",
                   "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    layout = header_layout("ba")
    for name in ("attention.png", "temporal_steps.png", "neighborhood.png"):
        figure = np.asarray(Image.open(out / name).convert("RGB"))
        for letter in "ab":
            assert tuple(figure[centre(layout.legend[letter])]) == block_rgb(letter), name
            assert tuple(figure[centre(layout.goal[letter])]) == block_rgb(letter), name
