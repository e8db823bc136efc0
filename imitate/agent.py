"""Run a trained policy in ``BlockStack-v0``: one conditioning demo, greedy ensemble actions.

The demo is embedded once per episode (``OneShotAgent.__init__``) and the embedding reused at every
control step; the ``E`` ensemble copies (independent temporal-dropout subsamples of the one demo,
paper section 4.1) run as one batch, and their action distributions are averaged before the greedy
(most probable) bin is taken on each axis.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from imitate import actions
from imitate.conditioning import conditioning_frames
from imitate.data.format import Demo
from imitate.model import DemoBatch, OneShotPolicy


class OneShotAgent:
    """A policy bound to one demonstration for one episode.

    Args:
        policy: the trained network (eval mode).
        demo_blocks: (T+1, 10, 3) float, the demo's block positions relative to the gripper (m).
        demo_gripper: (T+1, 2) float, the demo's gripper one-hot.
        block_mask: (10,) bool/int, the task's blocks.
        stage_ends: frame index ending each stage (for ``snapshot`` conditioning).
        ensemble: E, subsampled demo copies averaged (paper: 10). Conditioning modes without
            temporal dropout (``snapshot``, ``final``) have nothing to average and use one copy.
        seed: seed of the temporal-dropout subsamples (same seed, same actions).
    """

    def __init__(self, policy: OneShotPolicy, demo_blocks: np.ndarray, demo_gripper: np.ndarray,
                 block_mask: np.ndarray, stage_ends: np.ndarray | list[int], *,
                 ensemble: int = 10, seed: int = 0):
        if ensemble < 1:
            raise ValueError(f"ensemble must be at least 1, got {ensemble}")
        self.policy = policy
        self.device = next(policy.parameters()).device
        mask = np.asarray(block_mask).astype(bool)
        self.num_blocks = max(int(mask.sum()), 1)  # slots are the first n letters
        mode = policy.config.conditioning
        frames = conditioning_frames(len(demo_blocks), list(stage_ends), mode)
        k = self.num_blocks
        demo = DemoBatch(
            blocks=self._tensor(np.asarray(demo_blocks)[frames][None, :, :k]),  # (1, T', K, 3)
            gripper=self._tensor(np.asarray(demo_gripper)[frames][None]),  # (1, T', 2)
            block_mask=torch.ones(1, k, dtype=torch.bool, device=self.device),  # (1, K)
            frame_mask=torch.ones(1, len(frames), dtype=torch.bool, device=self.device),
        )
        copies = ensemble if mode == "full" else 1
        generator = torch.Generator().manual_seed(seed)
        self.encoding = policy.ensemble_encoding(demo, copies, generator)  # E rows
        self._block_mask = torch.ones(1, k, dtype=torch.bool, device=self.device)
        kept = self.encoding.frames  # (E, T~) into ``frames``, or None without dropout
        conditioned = np.asarray(frames, dtype=np.int64)
        #: (E, T~) int: the demo frame index of every frame each ensemble copy attends over.
        self.demo_frames = conditioned[None] if kept is None else conditioned[kept.cpu().numpy()]

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.tensor(array, dtype=torch.float32, device=self.device)  # a copy

    @torch.no_grad()
    def probabilities(self, observation: Mapping[str, np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble-averaged (3, bins) axis and (2,) gripper probabilities for an observation."""
        k = self.num_blocks
        blocks = self._tensor(observation["blocks"][None, :k])  # (1, K, 3)
        gripper = self._tensor(observation["gripper"][None])  # (1, 2)
        axis, grip = self.policy.act_probabilities(self.encoding, blocks, gripper,
                                                   self._block_mask)
        return axis.cpu().numpy(), grip.cpu().numpy()

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """The greedy action (4,) float32 for ``BlockStack-v0``: bin values (m) and gripper +-1."""
        axis, grip = self.probabilities(observation)
        indices = np.concatenate([axis.argmax(-1), [grip.argmax()]]).astype(np.int64)
        return actions.from_bins(indices)


def agent_for_demo(policy: OneShotPolicy, demo: Demo, *, ensemble: int = 10, seed: int = 0
                   ) -> OneShotAgent:
    """An agent conditioned on a stored demo (``imitate.data.Demo``)."""
    return OneShotAgent(policy, demo.blocks, demo.gripper, demo.block_mask[0], demo.stage_ends,
                        ensemble=ensemble, seed=seed)
