"""Rollout videos: the conditioning demonstration and the rollout side by side, as H.264 mp4.

Frames come from ``BlockStack-v0``'s CPU renderer (256 x 256 per view by default, fixed camera).
Rendering dominates the cost (about 22 frames/s here), so a ``FrameRecorder`` keeps every
``every``-th control step (default ``RENDER_EVERY`` = 2) plus the first and last. Videos play at
``VIDEO_FPS`` = 20 frames/s: with the env's 20 Hz control and ``every`` = 2 that is twice real
time. Each frame carries a header strip: the task, then per view its role, the stages complete
(k/n) and, on the final frames, the outcome or failure class.
"""

from __future__ import annotations

import errno
import functools
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from imitate.files import WriteError, atomic_file

#: Control steps between rendered frames.
RENDER_EVERY = 2
#: Playback rate of written videos (frames per second).
VIDEO_FPS = 20
#: Height of the text strip above the views (px).
HEADER = 40  # with 256 px views the frame height stays a multiple of 8 (H.264 blocks)
#: Frames the last image is held at the end of a video (1 s).
HOLD_END = VIDEO_FPS


@dataclass
class Frame:
    """One rendered view: (H, W, 3) uint8 image, stages complete, whether it is the end, and the
    control steps done when it was rendered."""

    image: np.ndarray
    stage: int
    done: bool
    step: int = 0


@dataclass
class FrameRecorder:
    """An ``on_step(env, info, done)`` hook keeping every ``every``-th frame (and the last)."""

    every: int = RENDER_EVERY
    frames: list[Frame] = field(default_factory=list)
    outcome: str | None = None
    _count: int = 0

    def __call__(self, env: Any, info: dict[str, Any], done: bool) -> None:
        if self._count % self.every == 0 or done:
            self.frames.append(Frame(env.render(), int(info["stage"]), done, self._count))
        self._count += 1
        if done:
            self.outcome = "success" if info.get("is_success") else str(info.get("failure"))


@functools.lru_cache(maxsize=4)
def font(size: int) -> Any:
    """Pillow's default font at ``size`` px (the bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _header(width: int, texts: Sequence[tuple[int, int, str, tuple[int, int, int]]]
            ) -> np.ndarray:
    """A (HEADER, width, 3) strip with ``(x, y, text, colour)`` texts written on it."""
    strip = Image.new("RGB", (width, HEADER), (24, 24, 24))
    draw = ImageDraw.Draw(strip)
    text_font = font(12)
    for x, y, text, colour in texts:
        draw.text((x + 6, y), text, fill=colour, font=text_font)
    return np.asarray(strip)


def _label(role: str, frame: Frame, num_stages: int, outcome: str | None) -> tuple[str, tuple]:
    text = f"{role}  stage {frame.stage}/{num_stages}"
    if frame.done and outcome is not None:
        colour = (120, 230, 120) if outcome == "success" else (240, 120, 110)
        return f"{text}  {outcome}", colour
    return text, (230, 230, 230)


def compose(task: str, num_stages: int, views: Sequence[tuple[str, FrameRecorder]]
            ) -> list[np.ndarray]:
    """Side-by-side frames of several recorded views (each padded with its last frame to the
    longest), a header strip on top, the last frame held for ``HOLD_END`` frames."""
    if not views or any(not recorder.frames for _, recorder in views):
        raise ValueError("every view needs at least one frame")
    length = max(len(recorder.frames) for _, recorder in views)
    width = views[0][1].frames[0].image.shape[1]
    out = []
    for t in range(length):
        images, texts = [], [(0, 3, f"task {task!r}", (200, 200, 255))]
        for column, (role, recorder) in enumerate(views):
            frame = recorder.frames[min(t, len(recorder.frames) - 1)]
            images.append(frame.image[..., :3])
            text, colour = _label(role, frame, num_stages, recorder.outcome)
            texts.append((column * width, 19, text, colour))
        body = np.concatenate(images, axis=1)  # (H, V * W, 3)
        out.append(np.concatenate([_header(body.shape[1], texts), body], axis=0))
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
