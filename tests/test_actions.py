"""The discrete action set: bins, snapping and round trips (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from envs import constants as C
from imitate.actions import (
    BINS,
    CLOSE,
    NUM_BINS,
    OPEN,
    ZERO_BIN,
    from_bins,
    snap,
    snap_axis,
    to_bins,
)


def test_bins_are_symmetric_sorted_and_scaled_to_max_step() -> None:
    assert NUM_BINS == 15  # as the paper's development code
    assert np.all(np.diff(BINS) > 0)
    np.testing.assert_array_equal(BINS, -BINS[::-1])
    assert BINS[ZERO_BIN] == 0.0
    assert BINS[-1] == pytest.approx(C.MAX_STEP)


def test_bins_are_roughly_log_spaced() -> None:
    positive = BINS[ZERO_BIN + 1:]
    ratios = positive[1:] / positive[:-1]
    assert np.all((ratios >= 2.0) & (ratios <= 2.5))


def test_every_bin_round_trips() -> None:
    axes = np.arange(NUM_BINS)
    grid = np.stack(np.meshgrid(axes, axes, axes, [OPEN, CLOSE], indexing="ij"), -1)
    indices = grid.reshape(-1, 4)
    np.testing.assert_array_equal(to_bins(from_bins(indices)), indices)


def test_snapping_picks_the_nearest_bin() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(-0.025, 0.025, size=1000)
    snapped = BINS[snap_axis(values)]
    best = np.min(np.abs(values[:, None] - BINS[None, :]), axis=1)
    np.testing.assert_allclose(np.abs(values - snapped), best)


def test_out_of_range_values_snap_to_the_extreme_bins() -> None:
    np.testing.assert_array_equal(snap_axis(np.array([-1.0, 1.0])), [0, NUM_BINS - 1])


def test_gripper_classes_follow_the_env_convention() -> None:
    # The env closes on a command <= 0 and opens on > 0.
    actions = np.array([[0, 0, 0, 1.0], [0, 0, 0, 0.0], [0, 0, 0, -0.3], [0, 0, 0, 1e-6]])
    np.testing.assert_array_equal(to_bins(actions)[:, 3], [OPEN, CLOSE, CLOSE, OPEN])
    np.testing.assert_array_equal(from_bins(to_bins(actions))[:, 3], [1.0, -1.0, -1.0, 1.0])


def test_snap_is_idempotent_and_keeps_batch_shape() -> None:
    rng = np.random.default_rng(1)
    actions = rng.uniform(-0.02, 0.02, size=(5, 7, 4)).astype(np.float32)
    once = snap(actions)
    assert once.shape == (5, 7, 4) and once.dtype == np.float32
    np.testing.assert_array_equal(snap(once), once)
    assert to_bins(actions).dtype == np.int64


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((2, 5))])
def test_wrong_shapes_are_rejected(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        to_bins(bad)


def test_bad_indices_are_rejected() -> None:
    with pytest.raises(ValueError):
        from_bins(np.array([NUM_BINS, 0, 0, 0]))
    with pytest.raises(ValueError):
        from_bins(np.array([0, 0, 0, 2]))
    with pytest.raises(TypeError):
        from_bins(np.array([0.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError):
        to_bins(np.array([np.nan, 0, 0, 1]))
