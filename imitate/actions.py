"""The discrete action set the policy predicts: per-axis displacement bins plus open/close.

The paper's development code used 15 bins per Cartesian axis,
{0, +-0.0003, +-0.001, +-0.003, +-0.01, +-0.03, +-0.1, +-0.3} (reference/paper.md, "Actions"),
and a binary gripper command. Scaling that set so its largest bin equals our maximum step
(``envs.constants.MAX_STEP`` = 0.02 m) would make the smallest bins 20 and 67 micrometres, far
below what the arm resolves (its steady tracking error is 1-2 mm). We keep the paper's shape (15
symmetric bins, roughly log-spaced, zero included) on a 1-2-5 series from 0.2 mm to 2 cm:

    {0, +-0.0002, +-0.0005, +-0.001, +-0.002, +-0.005, +-0.01, +-0.02}  metres per control step.

Encoding of one action ``(dx, dy, dz, gripper)`` as four integers: three indices into ``BINS``
(nearest bin, ties toward the smaller magnitude) and the gripper class ``OPEN`` (0, command > 0)
or ``CLOSE`` (1, command <= 0, as the env reads it). ``from_bins`` returns the bin values and +1 /
-1 for the gripper. Pure numpy; no simulator needed.
"""

from __future__ import annotations

import numpy as np

#: Positive bin magnitudes (m per control step).
_MAGNITUDES = np.array([0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02])
#: Per-axis bin values (m per control step), ascending; ``BINS[ZERO_BIN] == 0``.
BINS: np.ndarray = np.concatenate([-_MAGNITUDES[::-1], [0.0], _MAGNITUDES])
BINS.setflags(write=False)
NUM_BINS = len(BINS)
ZERO_BIN = NUM_BINS // 2
#: Gripper classes.
OPEN = 0
CLOSE = 1
NUM_GRIPPER_CLASSES = 2
#: Gripper command values that ``from_bins`` emits for each class.
GRIPPER_VALUES = np.array([1.0, -1.0])


def snap_axis(values: np.ndarray) -> np.ndarray:
    """Indices (int64) of the nearest bin for each displacement (m); ties go toward zero."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("displacements must be finite")
    distance = np.abs(values[..., None] - BINS)  # (..., NUM_BINS)
    # Prefer the smaller magnitude on ties: add a tiny penalty growing with |bin|.
    distance = distance + 1e-12 * np.abs(BINS)
    return np.argmin(distance, axis=-1).astype(np.int64)


def to_bins(actions: np.ndarray) -> np.ndarray:
    """``(..., 4)`` actions to ``(..., 4)`` int64: three axis bin indices and the gripper class."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.shape[-1:] != (4,):
        raise ValueError(f"actions must have a last dimension of 4, got shape {actions.shape}")
    indices = np.empty(actions.shape, dtype=np.int64)
    indices[..., :3] = snap_axis(actions[..., :3])
    indices[..., 3] = np.where(actions[..., 3] > 0.0, OPEN, CLOSE)
    return indices


def from_bins(indices: np.ndarray) -> np.ndarray:
    """``(..., 4)`` bin indices to ``(..., 4)`` float32 actions (bin values, gripper +1 / -1)."""
    indices = np.asarray(indices)
    if indices.shape[-1:] != (4,):
        raise ValueError(f"indices must have a last dimension of 4, got shape {indices.shape}")
    if not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"indices must be integers, got {indices.dtype}")
    axes, gripper = indices[..., :3], indices[..., 3]
    if np.any((axes < 0) | (axes >= NUM_BINS)):
        raise ValueError(f"axis bin indices must be in [0, {NUM_BINS})")
    if np.any((gripper != OPEN) & (gripper != CLOSE)):
        raise ValueError(f"gripper class must be {OPEN} (open) or {CLOSE} (close)")
    actions = np.empty(indices.shape, dtype=np.float32)
    actions[..., :3] = BINS[axes]
    actions[..., 3] = GRIPPER_VALUES[gripper]
    return actions


def snap(actions: np.ndarray) -> np.ndarray:
    """Actions replaced by their nearest representable action (``from_bins(to_bins(a))``)."""
    return from_bins(to_bins(actions))
