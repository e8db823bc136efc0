"""DART-style noise injection: the executed action is the expert's plus Gaussian noise, and the
label stays the clean action.

Units: metres per control step.
"""

from __future__ import annotations

import numpy as np

from envs import constants as C
from envs.expert.scripted import ScriptedExpert

#: Default standard deviation (m per control step, per axis) of the Gaussian noise added to the
#: executed displacement when collecting datasets: 3 mm, 15% of the maximum step and 60% of the
#: slow step near contacts. The paper injects noise into executed actions and keeps clean labels
#: but gives no level (reference/paper.md). Measured (benchmarks/expert.py, 20 episodes per stage
#: count): 3 mm costs 1.2-1.3x the clean steps per stage; 5 mm costs about 2x (up to 206 of the 250
#: steps per stage allowed), too close to the horizon on long tasks.
DEFAULT_NOISE_STD = 0.003


class NoisyExpert:
    """A ``ScriptedExpert`` whose executed actions carry DART-style noise.

    ``act(env)`` returns ``(executed, clean)``: step the env with ``executed`` and record ``clean``
    as the label. The noise comes from ``rng`` only, so a seeded generator makes episodes
    reproducible.

    Args:
        std: noise standard deviation (m per control step, per axis).
        rng: the generator the noise is drawn from.
        expert: the clean expert (a default ``ScriptedExpert`` if omitted).
    """

    def __init__(self, std: float = DEFAULT_NOISE_STD, rng: np.random.Generator | None = None,
                 expert: ScriptedExpert | None = None):
        if std < 0:
            raise ValueError(f"noise std must be >= 0, got {std}")
        self.std = std
        self.rng = rng if rng is not None else np.random.default_rng()
        self.expert = expert if expert is not None else ScriptedExpert()

    def act(self, env) -> tuple[np.ndarray, np.ndarray]:
        """``(executed, clean)`` actions, both float32 of shape (4,)."""
        clean = self.expert.act(env)
        return noisy_action(clean, self.std, self.rng), clean


def noisy_action(clean: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """The action to execute: ``clean`` plus N(0, std^2) on (dx, dy, dz) (m), clipped to
    +-``MAX_STEP``.

    The gripper command is kept. ``clean`` itself is not modified (it stays the label).
    """
    if std < 0:
        raise ValueError(f"noise std must be >= 0, got {std}")
    executed = np.array(clean, dtype=np.float32, copy=True).reshape(4)
    if std > 0:
        executed[:3] += rng.normal(0.0, std, size=3).astype(np.float32)
        executed[:3] = np.clip(executed[:3], -C.MAX_STEP, C.MAX_STEP)
    return executed
