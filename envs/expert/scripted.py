"""``ScriptedExpert``: the closed-loop expert that ties the world view, the plan, the set-down
choice and the motion together into one ``Box(4)`` action per control step.

Frames and units: world frame, metres; displacements are per control step.
"""

from __future__ import annotations

import logging

import numpy as np

from envs import constants as C
from envs.expert.clearance import FINGERTIP_DROP
from envs.expert.motion import (
    FAST_STEP,
    GRASP_XY,
    GRASP_Z,
    RELEASE_GAP,
    RELEASE_XY,
    RELEASE_Z,
    RELEASE_Z_BLOCKED,
    SLOW_BAND_PICK,
    SLOW_BAND_PLACE,
    go_to,
    steer,
)
from envs.expert.planner import Move, plan_move
from envs.expert.set_down import set_down
from envs.expert.world import EMPTY_GAP, OPEN_GAP, WorldView, observe

logger = logging.getLogger(__name__)


class ScriptedExpert:
    """Closed-loop scripted expert: ``act(env)`` is the action for the env's current state.

    Args:
        max_step: largest displacement per control step (m), at most the env's ``MAX_STEP``.
    """

    def __init__(self, max_step: float = C.MAX_STEP):
        if not 0.0 < max_step <= C.MAX_STEP:
            raise ValueError(f"max_step must be in (0, {C.MAX_STEP}], got {max_step}")
        self.max_step = max_step

    def act(self, env) -> np.ndarray:
        """The action (float32, shape (4,)) for the env's current state."""
        view = observe(env)
        delta, close = self.decide(view)
        action = np.empty(4, dtype=np.float32)
        action[:3] = np.clip(delta, -self.max_step, self.max_step)
        action[3] = -1.0 if close else 1.0
        return action

    def decide(self, view: WorldView) -> tuple[np.ndarray, bool]:
        """Displacement (m) and gripper command (True = close) for a ``WorldView``."""
        move = plan_move(view)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("held %d, move %s", view.held,
                         None if move is None else (move.block, move.reason))
        if view.held >= 0:
            return self._carry(view, move)
        if view.closed:
            return self._closed_empty(view, move)
        if view.opening < OPEN_GAP and view.finger_contacts.any():
            return np.zeros(3), False  # fingers still opening around a cube: let go first
        if move is None:
            return self._retreat(view), False
        return self._reach(view, move)

    def _carry(self, view: WorldView, move: Move | None) -> tuple[np.ndarray, bool]:
        """A cube is held: carry it to the move's destination (or set it down) and release it."""
        held = view.held
        if move is None or move.block != held:
            move = set_down(view, held, move)
        cube = view.positions[held]
        goal = move.destination + np.array([0.0, 0.0, RELEASE_GAP])
        delta, _ = go_to(view, cube, goal, C.CUBE_HALF, SLOW_BAND_PLACE, ignore={held},
                         may_descend=True)
        error = goal - cube
        xy_ok = np.linalg.norm(error[:2]) <= RELEASE_XY
        height = cube[2] - goal[2]
        blocked = height <= RELEASE_Z_BLOCKED and view.hand[2] - view.target[2] > 0.004
        if xy_ok and (height <= RELEASE_Z or blocked):
            return np.zeros(3), False
        return delta, True

    def _closed_empty(self, view: WorldView, move: Move | None) -> tuple[np.ndarray, bool]:
        """Gripper commanded closed but no cube held: keep closing at a grasp pose, else open."""
        if move is not None and view.opening > EMPTY_GAP:
            cube = view.positions[move.block]
            error = cube - view.hand
            at_grasp = np.linalg.norm(error[:2]) <= 2 * GRASP_XY and abs(error[2]) <= 3 * GRASP_Z
            # Keep closing at the grasp pose, also when both fingers already touch the cube but
            # are wider than ``HELD_GAP``: a yawed cube is still being squared up between them.
            if at_grasp:
                return np.zeros(3), True
        return np.zeros(3), False

    def _retreat(self, view: WorldView) -> np.ndarray:
        """Task done: lift the open hand clear of every cube."""
        clear = float(np.max(view.positions[:, 2])) + C.CUBE_HALF + 0.05
        if view.hand[2] < clear:
            return steer(view, view.hand, view.hand + np.array([0.0, 0.0, 0.02]),
                         FAST_STEP, FAST_STEP)
        return np.zeros(3)

    def _reach(self, view: WorldView, move: Move) -> tuple[np.ndarray, bool]:
        """Open hand: reach above the move's cube, descend around it, close at the grasp pose."""
        cube = view.positions[move.block]
        fingers_open = view.opening >= OPEN_GAP
        delta, arrived = go_to(view, view.hand, cube, FINGERTIP_DROP, SLOW_BAND_PICK,
                               ignore=set(), may_descend=fingers_open)
        if arrived and fingers_open:
            return np.zeros(3), True
        return delta, False
