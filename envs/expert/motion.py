"""Motion: steering the controlled point (the grasp point, or the held cube) to a goal by rising,
crossing above every column near the path, and descending slowly near contacts.

Settings follow ``shared/reference/sim-notes.md`` (measured): at most 2 cm per control step in
free space, 5 mm per step within about 3 cm of a contact, release with the held cube's bottom
about 3 mm above the target's top.

Frames and units: world frame, metres; displacements are per control step.
"""

from __future__ import annotations

import numpy as np

from envs import constants as C
from envs.expert.clearance import ZONE_X, ZONE_Y, arm_floor
from envs.expert.world import WorldView

#: Fast and slow per-step displacement limits (m per control step).
FAST_STEP = C.MAX_STEP
SLOW_STEP = 0.005
#: Height above the final pose below which the descent is slow: about 3 cm before contact (m).
SLOW_BAND_PICK = 0.065
SLOW_BAND_PLACE = 0.035
#: Vertical clearance kept above obstacles when moving sideways (m).
TRAVEL_MARGIN = 0.02
#: Horizontal error below which the controlled point descends (m).
DESCEND_XY = 0.010
#: Horizontal error allowed when closing the fingers or opening them to release (m).
GRASP_XY = 0.004
RELEASE_XY = 0.004
#: Vertical error allowed when closing the fingers on a cube (m).
GRASP_Z = 0.004
#: Within this distance of its goal (m), the controlled point is steered by integrating its error
#: on the commanded target with this gain, instead of by offsetting the measured hand.
FINE_RANGE = 0.01
FINE_GAIN = 0.5
#: Gap between the held cube's bottom and the target's top at release (m).
RELEASE_GAP = 0.003
#: The released cube must be at most this far above its resting height (m) ...
RELEASE_Z = 0.0015
#: ... or, when blocked (touching the target), at most this far.
RELEASE_Z_BLOCKED = 0.006


def go_to(view: WorldView, point: np.ndarray, goal: np.ndarray, low_drop: float,
          slow_band: float, ignore: set[int], may_descend: bool) -> tuple[np.ndarray, bool]:
    """Displacement (m) bringing ``point`` to ``goal`` (m, world) by rising, crossing and
    descending.

    ``low_drop`` is how far (m) the assembly's lowest point is below ``point``; ``slow_band``
    the height (m) above ``goal`` below which the descent is slow; ``ignore`` the cubes that are
    no obstacles (the held one); ``may_descend`` False hovers ``slow_band`` above the goal.
    Returns the displacement and whether ``point`` is at ``goal`` (aligned within the grasp
    tolerances).
    """
    error = goal - point
    xy_error = float(np.linalg.norm(error[:2]))
    if xy_error > DESCEND_XY:
        floor = max(_travel_floor(view, point[:2], goal[:2], ignore) + low_drop,
                    _arm_travel_floor(view, point[:2], goal[:2], ignore))
        cruise = max(floor, goal[2])
        if point[2] < floor - 0.005:  # rise in place before moving sideways
            desired = np.array([point[0], point[1], cruise])
        else:
            desired = np.array([goal[0], goal[1], cruise])
        return steer(view, point, desired, FAST_STEP, FAST_STEP), False
    height = point[2] - goal[2]
    desired = goal.copy()
    if not may_descend:  # hover above the contact until the fingers are open
        desired[2] = goal[2] + slow_band
    elif xy_error > GRASP_XY:  # stop just short of the goal until aligned
        desired[2] = goal[2] + 0.012
    max_z = SLOW_STEP if height < slow_band + 0.005 else FAST_STEP
    arrived = xy_error <= GRASP_XY and abs(height) <= GRASP_Z
    return steer(view, point, desired, FAST_STEP, max_z), arrived


def _travel_floor(view: WorldView, start_xy: np.ndarray, goal_xy: np.ndarray,
                  ignore: set[int]) -> float:
    """Lowest z (m) the moving assembly's lowest point may have on the way from start to goal.

    Every cube whose footprint comes within the hand zone of the straight path counts.
    """
    obstacles = _obstacles(view, ignore)
    lowest = C.TABLE_TOP_Z + TRAVEL_MARGIN  # never drag anything along the table
    if len(obstacles) == 0:
        return lowest
    path = _straight_path(start_xy, goal_xy)
    d = np.abs(path[:, None, :] - obstacles[None, :, :2])  # (S, m, 2)
    near = np.any((d[..., 0] < ZONE_X) & (d[..., 1] < ZONE_Y), axis=0)
    if not near.any():
        return lowest
    return max(lowest, float(np.max(obstacles[near, 2]) + C.CUBE_HALF + TRAVEL_MARGIN))


def _arm_travel_floor(view: WorldView, start_xy: np.ndarray, goal_xy: np.ndarray,
                      ignore: set[int]) -> float:
    """Lowest grasp-point height (m) at which the arm above the straight path from start to goal
    clears every cube's column (``arm_floor``): the forearm and elbow of a low hand sweep wide."""
    cubes = _obstacles(view, ignore)
    if len(cubes) == 0:
        return -np.inf
    path = _straight_path(start_xy, goal_xy)
    return float(np.max(arm_floor(path, cubes[:, :2], cubes[:, 2] + C.CUBE_HALF)))


def _obstacles(view: WorldView, ignore: set[int]) -> np.ndarray:
    """(m, 3) centres (m) of the cubes not in ``ignore``."""
    mask = np.ones(len(view.positions), dtype=bool)
    for i in ignore:
        if i >= 0:
            mask[i] = False
    return view.positions[mask]


def _straight_path(start_xy: np.ndarray, goal_xy: np.ndarray) -> np.ndarray:
    """(S, 2) points (m) every centimetre or less from start to goal, both included."""
    length = float(np.linalg.norm(goal_xy - start_xy))
    samples = max(2, int(np.ceil(length / 0.01)) + 1)
    return start_xy + np.linspace(0.0, 1.0, samples)[:, None] * (goal_xy - start_xy)


def steer(view: WorldView, point: np.ndarray, desired: np.ndarray, max_xy: float,
          max_z: float) -> np.ndarray:
    """Displacement (3,) (m) of the commanded target that brings ``point`` toward ``desired``
    (m, world), at most ``max_xy`` along x and y and ``max_z`` along z.

    ``point`` is the controlled point (grasp point or held cube); the hand is moved by the same
    offset, measured from the hand so that the arm's lag does not wind up.
    """
    error = desired - point
    if np.linalg.norm(error) < FINE_RANGE:
        # Close in: integrate the error on the commanded target, which also removes the arm's
        # steady tracking error (1-2 mm with the IK's null space).
        wanted = FINE_GAIN * error
    else:
        wanted = view.hand + error - view.target
    step = np.empty(3)
    step[:2] = np.clip(wanted[:2], -max_xy, max_xy)
    step[2] = np.clip(wanted[2], -max_z, max_z)
    return step
