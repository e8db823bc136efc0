"""Rollout videos: the conditioning demonstration and the rollout side by side, as H.264 mp4.

Frames come from ``BlockStack-v0``'s CPU renderer (256 x 256 per view by default, fixed camera).
Rendering dominates the cost (about 22 frames/s here), so a ``FrameRecorder`` keeps every
``every``-th control step (default ``RENDER_EVERY`` = 2) plus the first and last. Videos play at
``VIDEO_FPS`` = 20 frames/s: with the env's 20 Hz control and ``every`` = 2 that is twice real
time.

What a frame shows (``imitate.overlay`` draws it): above the views, the goal layout as small
towers in the blocks' colours and a legend chip per block letter; under each view, its role
(demo, policy or expert), the stages complete (k/n) and, on the final frames, the outcome or
failure class; the stage that comes next ("next [A] on [D]"); the block in the hand; and the
discretised action of the step (per axis, the lit bin of 15 and its value in mm; the gripper
command). With ``labels`` each cube's letter is drawn over it, placed by the camera projection
of its centre.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np

from envs.expert.world import observe
from imitate import actions
from imitate.files import WriteError, atomic_file
from imitate.overlay import ViewState, footer_strip, header_strip, label_blocks

#: Control steps between rendered frames.
RENDER_EVERY = 2
#: Playback rate of written videos (frames per second).
VIDEO_FPS = 20
#: Frames the last image is held at the end of a video (1 s).
HOLD_END = VIDEO_FPS


@dataclass
class Frame:
    """One rendered view: (H, W, 3) uint8 image, stages complete, whether it is the end, the
    control steps done when it was rendered, the block in the hand (index, -1 for none) and the
    (4,) int action bins of the step that led to it (``actions.to_bins``; None at a reset)."""

    image: np.ndarray
    stage: int
    done: bool
    step: int = 0
    held: int = -1
    action: np.ndarray | None = None


@dataclass
class FrameRecorder:
    """An ``on_step(env, info, done)`` hook keeping every ``every``-th frame (and the last);
    ``labels`` draws each cube's letter over it."""

    every: int = RENDER_EVERY
    labels: bool = False
    frames: list[Frame] = field(default_factory=list)
    outcome: str | None = None
    _count: int = 0

    def __call__(self, env: Any, info: dict[str, Any], done: bool) -> None:
        if self._count % self.every == 0 or done:
            self.frames.append(capture(env, info, done, self._count, labels=self.labels))
        self._count += 1
        if done:
            self.outcome = "success" if info.get("is_success") else str(info.get("failure"))


def capture(env: Any, info: dict[str, Any], done: bool, step: int, *,
            labels: bool = False) -> Frame:
    """Render ``env`` now, with what the footer needs: the held block (the expert's own test:
    gripper closed, the cube touching both fingers) and the last step's action as bins."""
    base = env.unwrapped
    image = env.render()
    if labels:
        image = label_blocks(image, base.block_pixels(), base.task.blocks)
    last = base.last_action
    bins = None if last is None else actions.to_bins(np.clip(last, -1.0, 1.0))
    return Frame(image, int(info["stage"]), done, step, observe(env).held, bins)


def compose(task: str, views: Sequence[tuple[str, FrameRecorder]]) -> list[np.ndarray]:
    """Side-by-side frames of several recorded views (each padded with its last frame to the
    longest): the goal and legend on top, each view's footer under it, the last frame held for
    ``HOLD_END`` frames."""
    if not views or any(not recorder.frames for _, recorder in views):
        raise ValueError("every view needs at least one frame")
    length = max(len(recorder.frames) for _, recorder in views)
    width = views[0][1].frames[0].image.shape[1]
    header = header_strip(task, width * len(views))
    out = []
    for t in range(length):
        columns = []
        for role, recorder in views:
            frame = recorder.frames[min(t, len(recorder.frames) - 1)]
            state = ViewState(role, frame.stage, frame.done, recorder.outcome, frame.held,
                              frame.action)
            columns.append(np.concatenate([frame.image[..., :3],
                                           footer_strip(task, state, width)], axis=0))
        out.append(np.concatenate([header, np.concatenate(columns, axis=1)], axis=0))
    return out + [out[-1]] * HOLD_END


def write_mp4(path: Path, frames: Sequence[np.ndarray], fps: int = VIDEO_FPS) -> Path:
    """Encode ``frames`` ((H, W, 3) uint8) as H.264 mp4, atomically: into a temporary file that
    must read back as an mp4 of every frame before it replaces ``path``. ffmpeg reports a full
    disk only on its stderr (a file without its index still "succeeds"); here any failure raises
    ``WriteError`` naming ``path`` and leaves an earlier file there unchanged."""
    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, suffix=".mp4") as temporary:
        try:
            with imageio.get_writer(temporary, fps=fps, codec="libx264", quality=7,
                                    macro_block_size=8, ffmpeg_log_level="quiet") as writer:
                for frame in frames:
                    writer.append_data(np.ascontiguousarray(frame, dtype=np.uint8))
        except OSError:
            raise
        except Exception as error:  # ffmpeg died (its pipe broke, it exited non-zero)
            raise _video_error(path, temporary, str(error)) from error
        _check_readable(path, temporary, len(frames))
    return path


def _check_readable(path: Path, temporary: Path, count: int) -> None:
    """Raise ``WriteError`` unless ``temporary`` opens as a video of ``count`` frames."""
    try:
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(temporary))
    except Exception as error:  # no index ("moov atom not found"), truncated stream
        raise _video_error(path, temporary, str(error).strip().splitlines()[-1:]) from error
    if frames != count:
        raise _video_error(path, temporary, f"it holds {frames} of {count} frames")


def _video_error(path: Path, temporary: Path, cause: object) -> WriteError:
    free = shutil.disk_usage(temporary.parent).free
    detail = "no space left on device" if free < 1 << 20 else f"unreadable video ({cause})"
    return WriteError(errno.ENOSPC if free < 1 << 20 else errno.EIO,
                      f"could not write {path}: {detail}; any earlier {path.name} is unchanged")
