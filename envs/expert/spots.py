"""Free table spots for a cube: out of the hand zones of the other cubes, clear of the tower
sites, and leaving the open fingers room around the cubes still to be picked.

Frames and units: world frame, metres; spots are (x, y) centres of a cube resting on the table.
"""

from __future__ import annotations

import numpy as np

from envs import constants as C
from envs.expert.clearance import WRIST_ZONE_X, WRIST_ZONE_Y, ZONE_X, ZONE_Y, arm_floor, level_z
from envs.predicates import STACK_HEIGHT

#: Candidate spots for setting cubes down (m): a grid over the reachable part of the table.
SPOT_X = np.arange(0.30, 0.6601, 0.02)
SPOT_Y = np.arange(-0.28, 0.2801, 0.02)
#: Least centre distance (m) along x or along y (the fingers' axis: the open fingers span 8 cm)
#: between a set-down spot and any other cube, when no spot clears the hand zones.
ROOM_X = 0.065
ROOM_Y = 0.09
#: Offsets (m) at which a set-down spot must also be clear of the tower sites, so that a cube
#: landing a few millimetres off its spot is not an intruder to be moved again.
SITE_SHIFTS = np.array([[0.0, 0.0], [0.01, 0.0], [-0.01, 0.0], [0.0, 0.01], [0.0, -0.01]])
#: Least centre distance (m, along x or y) between a set-down spot and any other cube: less, and
#: the cube lands on its neighbour.
APART = 0.058


def free_spots(
    positions: np.ndarray,
    exclude: set[int],
    near_xy: np.ndarray,
    center: np.ndarray | None = None,
    half: np.ndarray | None = None,
    sites: list[tuple[np.ndarray, int]] = (),
    count: int = 1,
    avoid: np.ndarray | None = None,
) -> np.ndarray:
    """Up to ``count`` table spots (k, 2) (xy, m) for a cube, best first, out of the hand zones
    of every other cube if possible.

    Among the grid spots (optionally only those within ``half`` of ``center``) from which a cube
    can be picked next to every site (column xy, final height) at its full height and whose zone
    clearance is at least 1, those nearest to ``near_xy``; when there is none, ranked for a
    crowded table (never on a neighbour, then room for the open fingers, then clear of the sites,
    then the largest clearance). ``exclude`` lists cubes not counted as obstacles (the cube
    being moved). Every spot leaves the open fingers room (``ROOM_X`` / ``ROOM_Y``) around each
    ``avoid`` point (k, 2) (xy, m): a spot another move will fill, or a cube not counted but
    still standing there.
    """
    gx, gy = np.meshgrid(SPOT_X, SPOT_Y, indexing="ij")
    spots = np.stack([gx.ravel(), gy.ravel()], axis=1)
    if center is not None and half is not None:
        inside = np.all(np.abs(spots - center) <= half + 1e-9, axis=1)
        spots = spots[inside]
    keep = [i for i in range(len(positions)) if i not in exclude]
    others = positions[keep]
    if len(others) == 0:
        clearance = np.full(len(spots), np.inf)
    else:
        # Tall columns reach the wrist: give them a wider berth.
        tall = others[:, 2] > C.CUBE_HALF + 2.5 * STACK_HEIGHT
        zone = np.where(tall[:, None], [WRIST_ZONE_X, WRIST_ZONE_Y], [ZONE_X, ZONE_Y])
        d = np.abs(spots[:, None, :] - others[None, :, :2])  # (S, m, 2)
        clearance = np.min(np.maximum(d[..., 0] / zone[:, 0], d[..., 1] / zone[:, 1]), axis=1)
    site_ok = np.ones(len(spots), dtype=bool)
    if len(sites):
        sites_xy = np.array([xy for xy, _ in sites]).reshape(-1, 2)
        tops = STACK_HEIGHT * np.array([height for _, height in sites], dtype=float)
        for shift in SITE_SHIFTS:  # clear by a margin: a cube landing a little off stays clear
            site_ok &= np.all(level_z(0) >= arm_floor(spots + shift, sites_xy, tops), axis=1)
    free = np.ones(len(spots), dtype=bool)
    if avoid is not None and len(avoid):
        free = leaves_room(spots, np.asarray(avoid)[:, :2])
    good = (clearance >= 1.0) & site_ok & free
    if good.any():
        candidates = spots[good]
        order = np.argsort(np.linalg.norm(candidates - near_xy, axis=1), kind="stable")
        return candidates[order[:count]]
    # Crowded table: never on a neighbour (the cube would tilt onto it); then with room for the
    # open fingers (else the release shoves the neighbours, and a cube shoved past the yaw that
    # closing fingers square up cannot be picked again), preferring spots clear of the sites
    # (else it is moved again as an intruder); among those, the largest clearance.
    room = apart = np.ones(len(spots), dtype=bool)
    if len(others):
        room = leaves_room(spots, others[:, :2])
        apart = np.all(np.max(d, axis=-1) >= APART, axis=1)
    score = (np.minimum(clearance, 5.0) + 10.0 * site_ok + 100.0 * room
             + 100.0 * (site_ok & room) + 1000.0 * apart + 10000.0 * free)
    return spots[np.argsort(-score, kind="stable")[:count]]


def has_room(positions: np.ndarray, exclude: set[int], xy: np.ndarray, relaxed: bool = False
             ) -> bool:
    """Whether a cube set down at ``xy`` (m) stays ``ROOM_X`` / ``ROOM_Y`` clear of every other
    cube of ``positions`` (n, 3) (m) (``exclude``: cubes not counted); ``relaxed``: only
    ``APART`` clear (not on a neighbour)."""
    others = np.array([p[:2] for i, p in enumerate(positions) if i not in exclude]).reshape(-1, 2)
    d = np.abs(others - xy)  # (m, 2)
    if relaxed:
        return bool(np.all(np.max(d, axis=1) >= APART))
    return bool(leaves_room(xy[None], others)[0])


def leaves_room(spots: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(S,) bool: whether a cube at each of ``spots`` (S, 2) leaves the open fingers room
    (``ROOM_X`` / ``ROOM_Y``) at every point of ``points`` (k, 2) (xy, m), and the other way
    round."""
    gap = np.abs(spots[:, None, :] - points[None, :, :])  # (S, k, 2)
    return np.all((gap[..., 0] >= ROOM_X) | (gap[..., 1] >= ROOM_Y), axis=1)
