"""Conditioning modes: the frames each keeps, the same in training batches and at inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imitate.agent import OneShotAgent
from imitate.conditioning import conditioning_frames
from imitate.data.loader import Batch
from imitate.model import OneShotPolicy, PolicyConfig


def test_each_mode_keeps_its_frames() -> None:
    assert conditioning_frames(5, [1, 3], "full") == [0, 1, 2, 3, 4]
    assert conditioning_frames(5, [1, 3], "snapshot") == [1, 3, 4]
    assert conditioning_frames(5, [1, 4], "snapshot") == [1, 4]
    assert conditioning_frames(5, [1, 1, 4], "snapshot") == [1, 4]  # a repeated end, kept once
    assert conditioning_frames(5, [1, 3], "final") == [4]
    with pytest.raises(ValueError, match="unknown conditioning 'middle'; choose full"):
        conditioning_frames(5, [], "middle")
    with pytest.raises(ValueError, match="at least one frame"):
        conditioning_frames(0, [], "final")


def batch_of(lengths: list[int], stage_ends: list[list[int]]) -> Batch:
    """A two-field-relevant ``Batch``: demos whose block x is the frame index (m)."""
    rows, longest = len(lengths), max(lengths)
    width = max(len(ends) for ends in stage_ends)
    blocks = np.zeros((rows, longest, 10, 3), dtype=np.float32)
    blocks[..., 0] = np.arange(longest, dtype=np.float32)[None, :, None]
    ends = np.full((rows, width), -1, dtype=np.int64)
    for row, row_ends in enumerate(stage_ends):
        ends[row, :len(row_ends)] = row_ends
    empty = np.zeros((rows, 1), dtype=np.int64)
    return Batch(task=empty[:, 0], demo_index=empty[:, 0], pair_index=empty[:, 0],
                 pair_source=empty[:, 0], block_mask=np.ones((rows, 10), dtype=bool),
                 demo_blocks=blocks, demo_gripper=np.zeros((rows, longest, 2), np.float32),
                 demo_mask=np.arange(longest)[None] < np.array(lengths)[:, None],
                 demo_length=np.array(lengths), stage_ends=ends,
                 num_stages=np.array([len(e) for e in stage_ends]), obs_blocks=blocks[:, :1],
                 obs_gripper=np.zeros((rows, 1, 2), np.float32), obs_step=empty,
                 labels=np.zeros((rows, 1, 4), np.float32))


@pytest.mark.parametrize("mode", ["snapshot", "final"])
def test_training_batches_and_the_agent_condition_on_the_same_frames(mode: str) -> None:
    lengths, stage_ends = [5, 3], [[1, 1, 4], [2]]
    blocks, _, mask = batch_of(lengths, stage_ends).conditioning(mode)
    policy = OneShotPolicy(PolicyConfig(hidden=8, conditioning=mode)).eval()
    for row, (length, ends) in enumerate(zip(lengths, stage_ends, strict=True)):
        expected = conditioning_frames(length, ends, mode)
        assert blocks[row, mask[row], 0, 0].tolist() == expected  # x is the frame index
        assert not blocks[row, ~mask[row]].any()
        demo = np.arange(length, dtype=np.float32)[:, None, None] * np.ones((1, 10, 3))
        with torch.no_grad():
            agent = OneShotAgent(policy, demo, np.zeros((length, 2)), np.ones(10), ends,
                                 ensemble=3)
        assert agent.demo_frames.tolist() == [expected]
