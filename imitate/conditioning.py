"""What the policy sees of its demonstration: the conditioning modes and the frames each keeps.

Paper section 5.2 compares three ways of conditioning on a demo of ``T + 1`` frames (frame ``t`` is
the state before action ``t``):

- ``full``: every frame (temporal dropout then subsamples them, ``imitate.model.temporal_dropout``);
- ``snapshot``: the last frame of each stage, i.e. the frame at which each stage was completed
  (``stage_ends``, repeated ends kept once), plus the demo's last frame when no stage ends there;
- ``final``: the last frame only.

Training (``imitate.data.loader.Batch.conditioning``) and inference (``imitate.agent``) both pick
frames with ``conditioning_frames``, so a policy sees the same frames of a demo in both.
"""

from __future__ import annotations

from collections.abc import Iterable

CONDITIONING_MODES = ("full", "snapshot", "final")


def check_conditioning(mode: str) -> None:
    """Raise ``ValueError`` naming the choices unless ``mode`` is a conditioning mode."""
    if mode not in CONDITIONING_MODES:
        raise ValueError(f"unknown conditioning {mode!r}; choose {', '.join(CONDITIONING_MODES)}")


def conditioning_frames(length: int, stage_ends: Iterable[int], mode: str) -> list[int]:
    """Indices of the demo frames a conditioning mode keeps, ascending.

    Args:
        length: frames in the demo (``T + 1``), at least 1.
        stage_ends: frame index at which each stage was completed, in build order (no padding);
            values outside ``0 .. length - 1`` are clipped into it.
        mode: one of ``CONDITIONING_MODES``.
    """
    check_conditioning(mode)
    if length < 1:
        raise ValueError("a demonstration needs at least one frame")
    if mode == "full":
        return list(range(length))
    if mode == "final":
        return [length - 1]
    ends = sorted({min(max(int(end), 0), length - 1) for end in stage_ends})
    return ends if ends and ends[-1] == length - 1 else [*ends, length - 1]
