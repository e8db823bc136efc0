"""Where the arm would hit a column: the geometry of the hand, wrist, forearm and upper arm, and
the lowest grasp-point height at which they clear the columns under them (``arm_floor``).

Frames and units: world frame, metres; the robot base at the origin, the table top at
z = ``constants.TABLE_TOP_Z``. A *column* is a stack of cubes standing on the table; *level* k
is the height of the centre of the (k+1)-th cube of a column (``level_z``).
"""

from __future__ import annotations

import math

import numpy as np

from envs import constants as C
from envs.predicates import STACK_HEIGHT

# --- Geometry of the hand (m, relative to the grasp point; measured link AABBs) ------------------
#: Lowest point of the open fingers below the grasp point.
FINGERTIP_DROP = 0.012
#: Half extents of the region around a column in which the hand box would hit it (hand box half
#: widths 0.036 / 0.108 + half a cube + 1 cm margin).
ZONE_X = 0.071
ZONE_Y = 0.143
#: The same for the wrist (link 6), which reaches columns three cubes above the working level.
WRIST_ZONE_X = 0.13
WRIST_ZONE_Y = 0.156
#: Boxes around the hand, wrist (link 6) and forearm (link 5) relative to the grasp point, from
#: their AABBs with the hand pointing down: (u_min, u_max, v_min, v_max, bottom) with u radial
#: (away from the robot base) and v tangential (m). The hand's box is symmetric in v, so its world
#: y extent equals its v extent near y = 0, the region where towers are built.
ARM_BOXES = (
    (-0.036, 0.036, -0.108, 0.108, 0.035),  # hand
    (-0.094, 0.094, -0.121, 0.121, 0.101),  # wrist
    (-0.140, 0.048, -0.060, 0.060, 0.157),  # forearm
)
#: Columns whose top is more than ``ELBOW_BOTTOM`` above the grasp point and closer than
#: ``ELBOW_RADIUS`` to it (m) count as hit by the elbow and upper arm (observed: a 6-cube tower
#: 19 cm and a 9-cube tower 23 cm from a pick on the table were knocked over). With the arm
#: stretched, for grasps more than ``STRETCHED_REACH`` from the base, ``ELBOW_RADIUS_STRETCHED``
#: (observed: a 6-cube tower 27 cm from a pick at x = 0.66 m was knocked over).
ELBOW_RADIUS = 0.26
ELBOW_RADIUS_STRETCHED = 0.30
STRETCHED_REACH = 0.62
ELBOW_BOTTOM = 0.17
#: Half width (m) of the corridor above the line from the robot base to the grasp point where the
#: upper arm and forearm pass, and how far above the grasp point (m) they run (observed: an
#: 8-cube tower 9 cm beside that line was knocked over by a pick on the table behind it).
ARM_CORRIDOR = 0.12
ARM_CORRIDOR_BOTTOM = 0.25
#: Extra room around a cube's footprint and above its top when checking the arm against it (m).
ARM_MARGIN = 0.01


def conflict(site_xy: np.ndarray, levels: range, column_xy: np.ndarray, height: int) -> bool:
    """Whether working at ``site_xy`` (m) at any of ``levels`` hits a column of ``height`` cubes
    at ``column_xy`` (m) (level k: the grasp point at the centre of the (k+1)-th cube of a
    column)."""
    if height <= 0 or len(levels) == 0:
        return False
    floor = column_floor(float(site_xy[0]), float(site_xy[1]), float(column_xy[0]),
                         float(column_xy[1]), STACK_HEIGHT * height)
    return any(level_z(k) < floor for k in levels)


def level_z(level: int) -> float:
    """Centre height (m) of the (level+1)-th cube of a column standing on the table."""
    return C.TABLE_TOP_Z + C.CUBE_HALF + STACK_HEIGHT * level


def arm_hits(grasps: np.ndarray, column_xy: np.ndarray, top: float) -> np.ndarray:
    """(S,) bool: whether the hand, wrist or forearm at each grasp point touches a column.

    ``grasps`` (S, 3) are grasp points (m) with the hand pointing down; the column stands at
    ``column_xy`` with its top face at height ``top`` (m). See ``arm_floor``.
    """
    grasps = np.atleast_2d(grasps)
    floor = arm_floor(grasps[:, :2], np.reshape(column_xy, (1, 2)), np.array([top]))
    return grasps[:, 2] < floor[:, 0]


def arm_floor(grasps_xy: np.ndarray, columns_xy: np.ndarray, tops: np.ndarray) -> np.ndarray:
    """(S, m) lowest grasp-point height (m) at which the hand, wrist and forearm above each of
    the points ``grasps_xy`` (S, 2) clear each column standing at ``columns_xy`` (m, 2) with its
    top face at ``tops`` (m,) (m); -inf where no part of the arm passes over the column.

    Approximate: boxes from the link AABBs in a frame turned toward each grasp point's bearing
    from the robot base, the elbow's swing and the upper arm's corridor.
    """
    grasps_xy = np.atleast_2d(grasps_xy)
    bearing = np.arctan2(grasps_xy[:, 1], grasps_xy[:, 0])
    radial = np.stack([np.cos(bearing), np.sin(bearing)], axis=1)[:, None, :]  # (S, 1, 2)
    tangent = np.concatenate([-radial[..., 1:], radial[..., :1]], axis=-1)  # (S, 1, 2)
    offset = columns_xy[None, :, :] - grasps_xy[:, None, :]  # (S, m, 2)
    u, v = np.sum(offset * radial, axis=-1), np.sum(offset * tangent, axis=-1)  # (S, m)
    reach = C.CUBE_HALF + ARM_MARGIN
    floor = np.full(u.shape, -np.inf)
    for u_min, u_max, v_min, v_max, bottom in ARM_BOXES:
        over = ((u > u_min - reach) & (u < u_max + reach) & (v > v_min - reach)
                & (v < v_max + reach))
        floor = np.where(over, np.maximum(floor, tops - bottom + ARM_MARGIN), floor)
    # The elbow and upper arm swing wide when the hand works low: keep tall columns at a distance.
    distance = np.linalg.norm(offset, axis=-1)
    reach_out = np.linalg.norm(grasps_xy, axis=1)[:, None]  # (S, 1)
    radius = np.where(reach_out > STRETCHED_REACH, ELBOW_RADIUS_STRETCHED, ELBOW_RADIUS)
    floor = np.where(distance < radius, np.maximum(floor, tops - ELBOW_BOTTOM), floor)
    # The upper arm and forearm run from the base toward the hand high above the table: a tall
    # column in that corridor (between the base and the grasp point) is in the way.
    along = np.sum(columns_xy[None] * radial, axis=-1)
    across = np.abs(np.sum(columns_xy[None] * tangent, axis=-1))
    corridor = (along > 0.0) & (along < reach_out) & (across < ARM_CORRIDOR)
    return np.where(corridor, np.maximum(floor, tops - ARM_CORRIDOR_BOTTOM), floor)


def column_floor(grasp_x: float, grasp_y: float, column_x: float, column_y: float,
                 top: float) -> float:
    """``arm_floor`` for one grasp point and one column (m), in scalars, to the last bit.

    The expert asks this several times a control step; numpy's per-call overhead on arrays of one
    element made it a quarter of a 10-cube demo's time. The bearing's arctan2, cos and sin are
    numpy's (its SIMD arctan2 rounds some arguments differently from ``math.atan2``), and every
    sum adds its terms in ``arm_floor``'s order, so the result equals ``arm_floor``'s exactly.
    """
    bearing = np.arctan2(grasp_y, grasp_x)
    cos, sin = float(np.cos(bearing)), float(np.sin(bearing))
    dx, dy = column_x - grasp_x, column_y - grasp_y
    u, v = dx * cos + dy * sin, dx * -sin + dy * cos  # radial, tangential (m)
    reach = C.CUBE_HALF + ARM_MARGIN
    floor = -math.inf
    for u_min, u_max, v_min, v_max, bottom in ARM_BOXES:
        if u_min - reach < u < u_max + reach and v_min - reach < v < v_max + reach:
            floor = max(floor, top - bottom + ARM_MARGIN)
    reach_out = math.sqrt(grasp_x * grasp_x + grasp_y * grasp_y)
    radius = ELBOW_RADIUS_STRETCHED if reach_out > STRETCHED_REACH else ELBOW_RADIUS
    if math.sqrt(dx * dx + dy * dy) < radius:
        floor = max(floor, top - ELBOW_BOTTOM)
    along = column_x * cos + column_y * sin
    across = abs(column_x * -sin + column_y * cos)
    if 0.0 < along < reach_out and across < ARM_CORRIDOR:
        floor = max(floor, top - ARM_CORRIDOR_BOTTOM)
    return floor
