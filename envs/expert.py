"""A closed-loop scripted expert for ``BlockStack-v0``, and DART-style noise injection.

``ScriptedExpert().act(env)`` returns the ``Box(4)`` action for the env's CURRENT state. It keeps
no memory between calls: every step it re-derives, from the privileged state alone (cube centres,
measured grasp point, commanded target, finger opening, last gripper command, finger contacts),

1. which cube is in the hand, if any (gripper commanded closed, the cube touches both fingers and
   the fingers are no wider than a cube);
2. the next *move* (one cube and where it must go), from the task and the current layout
   (``plan_move``): unstack a cube resting on a wrong support, clear cubes off a source or target,
   move a cube out of the way of a tower about to grow, move a tall tower's base near the robot,
   or put the first unfinished stage's source on its target;
3. the phase of that move from the hand's pose relative to the cubes: reach above the cube, descend,
   close, lift, carry above the destination, descend, open, retreat.

Because nothing is remembered, the expert answers any state a learner may reach (DAgger), recovers
from drops and perturbations (a dropped cube is the next move's cube again, a wrong cube in the hand
is set down in free table space, a knocked tower fails the "correct" test and is rebuilt), and only
slows down when its actions are noisy or snapped to discrete bins.

Frames and units: world frame, metres; the robot base at the origin, the table top at z = 0. Motion
settings follow ``shared/reference/sim-notes.md`` (measured): at most 2 cm per control step in free
space, 5 mm per step within about 3 cm of a contact, release with the held cube's bottom about
3 mm above the target's top, align the HELD cube (not the hand) over the target, carry above
every column near the path and high enough for the forearm and elbow to clear every column
under them (``arm_floor``), keep the hand's collision box (+-10.4 cm along y, +-3.6 cm along x,
from 3.5 cm above the grasp point) away from columns two cubes higher than the working level, and
build towers of seven or more cubes near x = 0.45 m where the hand can reach their top.

Collisions of the arm with columns are predicted by ``arm_hits`` (boxes around the hand, wrist and
forearm from their measured AABBs, a radius around the elbow and a corridor under the upper arm
for tall columns). Before a tower grows, cubes that would become unreachable next to it are moved
away, and a lone base whose tower would crowd a finished one is moved; set-down spots are chosen
clear of every tower site (``free_spots``), out of the way of the plan's pending move, and only
where the plan leaves the cube alone, also when it lands a centimetre off and over the plan's
next moves (``_stays``). A spot for a cube moved out of the way still leaves the open fingers
room around the stage's source.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from envs import constants as C
from envs.predicates import STACK_HEIGHT, XY_TOLERANCE, Z_TOLERANCE
from envs.tasks import TABLE, Task

logger = logging.getLogger(__name__)

#: Version of the expert's behaviour, recorded in every dataset (``expert_version``): bump it when
#: a change alters the actions it returns, so that resuming an old dataset is refused.
EXPERT_VERSION = 3

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

# --- Motion settings (sim-notes) ------------------------------------------------------------------
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

# --- Gripper --------------------------------------------------------------------------------------
#: Finger gap (m) above which the fingers count as open, and at most which a cube touching both
#: fingers counts as held (a tilted cube is up to 7 cm wide).
OPEN_GAP = 0.07
HELD_GAP = 0.066
#: Finger gap (m) below which a closed gripper has missed its cube.
EMPTY_GAP = 0.03

# --- Layout planning ------------------------------------------------------------------------------
#: Towers of at least this many cubes are built near ``TALL_SITE`` (reach; sim-notes item 7).
TALL_HEIGHT = 7
TALL_SITE = np.array([0.45, 0.0])
#: Where a tall tower's base is accepted (half extents around ``TALL_SITE``, m) ...
TALL_ACCEPT = np.array([0.08, 0.14])
#: ... and where it is moved to when outside (m).
TALL_TARGET = np.array([0.06, 0.12])
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
#: A held cube whose nearest free spot is farther than this (m) is set down below the hand when
#: there is room there.
SET_DOWN_REACH = 0.05
#: Height (m) above its resting height below which a cube being set down where it is stays
#: committed to that spot.
SET_DOWN_COMMITTED = 0.04
#: Plan moves followed ahead when checking that a cube set down at a spot is not moved again.
SET_DOWN_LOOKAHEAD = 6
#: Free spots tried, nearest first, for a set-down the plan would not move again.
SET_DOWN_CANDIDATES = 8
#: A relocation shorter than this (m) is not worth a move (and would repeat forever).
MIN_SHIFT = 0.02
#: A cube counts as resting on the table when its centre is this close to half a cube high (m).
TABLE_Z_TOLERANCE = Z_TOLERANCE


@dataclass(frozen=True)
class Move:
    """One pick-and-place: put cube ``block`` with its centre at ``destination`` (m, world).

    ``support`` is the cube it goes on (``TABLE`` for the table); ``reason`` is for logs.
    """

    block: int
    destination: np.ndarray
    support: int
    reason: str


@dataclass
class WorldView:
    """The privileged state the expert reads, in the world frame (m).

    Attributes:
        task: the task.
        positions: (n, 3) cube centres.
        hand: measured grasp point.
        target: commanded end-effector target.
        opening: finger gap (0..0.08).
        closed: the last gripper command was "close".
        finger_contacts: (n, 2) bool, cube touches finger 1 / finger 2.
        held: index of the cube in the hand, or -1.
    """

    task: Task
    positions: np.ndarray
    hand: np.ndarray
    target: np.ndarray
    opening: float
    closed: bool
    finger_contacts: np.ndarray
    held: int

    @cached_property
    def support(self) -> np.ndarray:
        """(n,) the cube each cube rests on geometrically, ``TABLE`` on the table, -2 otherwise.

        The held cube rests on nothing (-2).
        """
        return _geometric_support(self.positions, self.held)

    @cached_property
    def correct(self) -> np.ndarray:
        """(n,) bool: the cube rests on its target support and that support is correct in turn."""
        return _correct_blocks(self.task, self.support)

    @cached_property
    def above(self) -> dict[int, int]:
        """Map from a cube to the cube resting on it (the closest one if several)."""
        result: dict[int, int] = {}
        for upper, lower in enumerate(self.support):
            if lower >= 0 and lower not in result:
                result[int(lower)] = upper
        return result

    def top_of(self, block: int) -> int:
        """The top cube of the stack standing on ``block`` (``block`` itself when it is clear)."""
        seen = {block}
        while block in self.above and self.above[block] not in seen:
            block = self.above[block]
            seen.add(block)
        return block

    def column(self, block: int) -> set[int]:
        """``block`` and every cube under and over it."""
        members = {block}
        lower = block
        while self.support[lower] >= 0 and int(self.support[lower]) not in members:
            lower = int(self.support[lower])
            members.add(lower)
        upper = block
        while upper in self.above and self.above[upper] not in members:
            upper = self.above[upper]
            members.add(upper)
        return members


def observe(env) -> WorldView:
    """Read the privileged state of a ``BlockStackEnv`` (wrapped or not)."""
    base = env.unwrapped
    panda, scene = base.panda, base.scene
    if panda is None or scene is None:
        raise RuntimeError("the env must be reset before the expert can act")
    positions = scene.sim.base_positions(scene.cubes)
    contacts = np.zeros((len(scene.cubes), 2), dtype=bool)
    touched = scene.sim.touching(panda.body)
    for i, cube in enumerate(scene.cubes):
        if cube in touched:
            links = scene.sim.contact_links(panda.body, cube)
            contacts[i] = [panda.finger_links[0] in links, panda.finger_links[1] in links]
    opening = panda.finger_opening()
    closed = bool(panda.gripper_closed)
    held = -1
    if closed and opening <= HELD_GAP:
        gripped = np.flatnonzero(contacts.all(axis=1))
        if len(gripped):
            hand = panda.ee_position()
            held = int(gripped[np.argmin(np.linalg.norm(positions[gripped] - hand, axis=1))])
    return WorldView(
        task=base.task, positions=positions, hand=panda.ee_position(),
        target=np.asarray(panda.target, dtype=float), opening=opening, closed=closed,
        finger_contacts=contacts, held=held,
    )


# --- Layout reasoning (pure functions of positions) -----------------------------------------------
def _geometric_support(positions: np.ndarray, held: int) -> np.ndarray:
    """Per cube: the cube it rests on (paper's stage test), ``TABLE``, or -2 (in the air/held)."""
    n = len(positions)
    offsets = positions[:, None, :] - positions[None, :, :]  # (n, n, 3): upper i minus lower j
    rests = (
        (np.abs(offsets[..., 0]) <= XY_TOLERANCE)
        & (np.abs(offsets[..., 1]) <= XY_TOLERANCE)
        & (np.abs(offsets[..., 2] - STACK_HEIGHT) <= Z_TOLERANCE)
    )
    np.fill_diagonal(rests, False)
    support = np.full(n, -2, dtype=int)
    on_table = np.abs(positions[:, 2] - (C.TABLE_TOP_Z + C.CUBE_HALF)) <= TABLE_Z_TOLERANCE
    support[on_table] = TABLE
    for i in range(n):
        if rests[i].any():
            candidates = np.flatnonzero(rests[i])
            distance = np.hypot(offsets[i, candidates, 0], offsets[i, candidates, 1])
            support[i] = candidates[np.argmin(distance)]
    if held >= 0:
        support[held] = -2
    return support


def _correct_blocks(task: Task, support: np.ndarray) -> np.ndarray:
    """(n,) bool: each cube rests on its target support, recursively down to the table."""
    n = task.num_blocks
    correct = np.zeros(n, dtype=bool)
    for tower in task.towers:  # top to bottom
        ok = True
        for letter in reversed(tower):  # bottom up
            block = ord(letter) - ord("a")
            ok = ok and support[block] == task.target_support[block]
            correct[block] = ok
    return correct


def _tower_heights(task: Task) -> np.ndarray:
    """(n,) final height (cubes) of the tower each cube belongs to."""
    heights = np.zeros(task.num_blocks, dtype=int)
    for tower in task.towers:
        for letter in tower:
            heights[ord(letter) - ord("a")] = len(tower)
    return heights


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
            site_ok &= np.all(_level_z(0) >= arm_floor(spots + shift, sites_xy, tops), axis=1)
    free = np.ones(len(spots), dtype=bool)
    if avoid is not None and len(avoid):
        free = _leaves_room(spots, np.asarray(avoid)[:, :2])
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
        room = _leaves_room(spots, others[:, :2])
        apart = np.all(np.max(d, axis=-1) >= APART, axis=1)
    score = (np.minimum(clearance, 5.0) + 10.0 * site_ok + 100.0 * room
             + 100.0 * (site_ok & room) + 1000.0 * apart + 10000.0 * free)
    return spots[np.argsort(-score, kind="stable")[:count]]


def _table_move(view: WorldView, block: int, reason: str, tall_site: bool = False,
                ignore: int = -1, avoid: np.ndarray | None = None) -> Move:
    """Move ``block`` to a free table spot (near the tall-tower site when ``tall_site``).

    ``ignore``: a cube not counted as an obstacle (the stage's source, about to move anyway);
    the spot still leaves the open fingers room around it, as it is picked from there next.
    ``avoid``: (k, 2) xy (m) the spot leaves room around.
    """
    center, half = (TALL_SITE, TALL_TARGET) if tall_site else (None, None)
    keep_off = [] if avoid is None else list(np.asarray(avoid).reshape(-1, 2))
    if ignore >= 0:
        keep_off.append(view.positions[ignore, :2])
    # The held cube is in the air: where it is carried through is nobody's obstacle.
    not_obstacles = {block, ignore, view.held}
    xy = free_spots(view.positions, not_obstacles, view.positions[block, :2], center, half,
                    _sites(view, exclude=block), avoid=np.array(keep_off).reshape(-1, 2))[0]
    destination = np.array([xy[0], xy[1], C.TABLE_TOP_Z + C.CUBE_HALF])
    return Move(block, destination, TABLE, reason)


def _has_room(positions: np.ndarray, exclude: set[int], xy: np.ndarray, relaxed: bool = False
              ) -> bool:
    """Whether a cube set down at ``xy`` (m) stays ``ROOM_X`` / ``ROOM_Y`` clear of every other
    cube (``exclude``: cubes not counted); ``relaxed``: only ``APART`` clear (not on a
    neighbour)."""
    others = np.array([p[:2] for i, p in enumerate(positions) if i not in exclude]).reshape(-1, 2)
    d = np.abs(others - xy)  # (m, 2)
    if relaxed:
        return bool(np.all(np.max(d, axis=1) >= APART))
    return bool(_leaves_room(xy[None], others)[0])


def _leaves_room(spots: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(S,) bool: whether a cube at each of ``spots`` (S, 2) leaves the open fingers room
    (``ROOM_X`` / ``ROOM_Y``) at every point of ``points`` (k, 2) (xy, m), and the other way
    round."""
    gap = np.abs(spots[:, None, :] - points[None, :, :])  # (S, k, 2)
    return np.all((gap[..., 0] >= ROOM_X) | (gap[..., 1] >= ROOM_Y), axis=1)


def _plan_ahead(view: WorldView, held: int, xy: np.ndarray) -> Iterator[Move]:
    """The plan's next moves (at most ``SET_DOWN_LOOKAHEAD``, each as if done) if the held cube
    stood on the table at ``xy`` (m) instead; lazily, so a caller that stops early plans no more.
    """
    positions = view.positions.copy()
    positions[held] = [xy[0], xy[1], _level_z(0)]
    for _ in range(SET_DOWN_LOOKAHEAD):
        move = plan_move(replace(view, positions=positions, held=-1))
        if move is None:
            return
        yield move
        positions = positions.copy()
        positions[move.block] = move.destination


def _plan_if_set_down(view: WorldView, held: int, xy: np.ndarray) -> Move | None:
    """The plan's next move if the held cube stood on the table at ``xy`` (m) instead."""
    return next(_plan_ahead(view, held, xy), None)


def _to_table(move: Move | None, held: int) -> bool:
    """Whether ``move`` puts the cube ``held`` on the table."""
    return move is not None and move.block == held and move.support == TABLE


def _table_move_of(held: int, moves: Iterator[Move]) -> Move | None:
    """The first of ``moves`` that moves ``held``, if it puts it on the table; else None."""
    move = next((move for move in moves if move.block == held), None)
    return move if _to_table(move, held) else None


def _moved_again(view: WorldView, held: int, xy: np.ndarray) -> Move | None:
    """The table move the plan would give the held cube if it stood on the table at ``xy`` (m).

    The plan's next ``SET_DOWN_LOOKAHEAD`` moves are followed (each as if done): the cube must
    not be the plan's next move, and not a later intruder either once the cubes moved before it
    are gone. None when the plan leaves the cube there (or puts it on its tower).
    """
    return _table_move_of(held, _plan_ahead(view, held, xy))


def _left_here(view: WorldView, held: int, xy: np.ndarray) -> bool:
    """Whether the plan leaves the held cube set down at ``xy`` (m) alone: its next move is
    another cube's and no later one moves it to the table (``_moved_again``)."""
    moves = _plan_ahead(view, held, xy)
    first = next(moves, None)
    return first is None or (first.block != held and _table_move_of(held, moves) is None)


def _set_down(view: WorldView, held: int, pending: Move | None = None) -> Move:
    """Where to put a held cube that the plan (which skips the held cube) does not move.

    Right below the hand when the nearest free spot is far and there is room there; else the
    nearest of the ``SET_DOWN_CANDIDATES`` best free spots (as roomy as the best) where the cube
    stays (``_stays``); else where the plan would send it from the best spot. ``pending`` is the
    plan's next move (of another cube): no spot is in the open fingers' way at its destination.
    Candidates are judged as if the cube stood there, never by where it is carried through, so
    the carry cannot swing back and forth across the edge of a tower's zone.
    """
    taken = np.empty((0, 2)) if pending is None else pending.destination[None, :2]
    spots = free_spots(view.positions, {held}, view.positions[held, :2],
                       sites=_sites(view, exclude=held), count=SET_DOWN_CANDIDATES, avoid=taken)
    here = view.positions[held, :2]
    # Once the cube is on its way down here, only a neighbour right below stops it: the cube's
    # drift while descending must not flip the decision back and forth.
    descending = view.positions[held, 2] < _level_z(0) + SET_DOWN_COMMITTED
    clear_of_pending = bool(_leaves_room(here[None], taken)[0])
    if (np.linalg.norm(spots[0] - here) > SET_DOWN_REACH and clear_of_pending
            and _has_room(view.positions, {held}, here, relaxed=descending)
            and _left_here(view, held, here)):
        return Move(held, np.array([here[0], here[1], _level_z(0)]), TABLE, "set down here")
    # On a crowded table the candidates are ranked, not all roomy: never trade the open fingers'
    # room (they would shove the neighbours on release) for a spot the plan leaves alone.
    roomy = _has_room(view.positions, {held}, spots[0])
    for spot in spots:
        if roomy and not _has_room(view.positions, {held}, spot):
            continue
        if _stays(view, held, spot):
            return Move(held, np.array([spot[0], spot[1], _level_z(0)]), TABLE, "set down")
    again = _plan_if_set_down(view, held, spots[0])
    if _to_table(again, held):
        return Move(held, again.destination, TABLE, "set down clear")
    return Move(held, np.array([spots[0][0], spots[0][1], _level_z(0)]), TABLE, "set down")


def _stays(view: WorldView, held: int, xy: np.ndarray) -> bool:
    """Whether the plan leaves the held cube on the table at ``xy`` (m): also when it lands a
    centimetre off (``SITE_SHIFTS``), and over the plan's next moves (``_moved_again``)."""
    for shift in SITE_SHIFTS[1:]:
        if _to_table(_plan_if_set_down(view, held, xy + shift), held):
            return False
    return _moved_again(view, held, xy) is None


def _clear_then(view: WorldView, block: int, reason: str) -> Move | None:
    """If something stands on ``block``, the move that takes the top of that stack away."""
    top = view.top_of(block)
    if top != block:
        return _table_move(view, top, f"clear {reason}")
    return None


def plan_move(view: WorldView) -> Move | None:
    """The next pick-and-place for the current layout, or None when the task is done."""
    task, correct, pos = view.task, view.correct, view.positions
    pending = [stage for stage in task.stages if not correct[stage.source]]
    if not pending:
        wrong = [b for b in range(task.num_blocks) if not correct[b]]
        if not wrong:
            return None
        block = wrong[0]
        return _clear_then(view, block, "misplaced base") or _table_move(view, block, "to table")
    source, target = pending[0]
    heights = _tower_heights(task)
    tall = heights[target] >= TALL_HEIGHT
    base = task.target_support[target] == TABLE
    if base and target not in view.above:
        outside_site = tall and bool(np.any(np.abs(pos[target, :2] - TALL_SITE) > TALL_ACCEPT))
        if not correct[target] or outside_site:  # off the table (or held), or too far to reach
            move = _table_move(view, target, "place base", tall_site=tall)
            if not correct[target] or _moves_far(view, move):
                return move
    if not correct[target]:  # a tower's base resting on a wrong support, under other cubes
        return _clear_then(view, target, "base") or _table_move(view, target, "base to table")
    move = _clear_then(view, target, "target")
    if move is not None:
        return move
    move = _intruder_move(view, source, target, heights)
    if move is not None:
        return move
    move = _clear_then(view, source, "source")
    if move is not None:
        return move
    destination = pos[target] + np.array([0.0, 0.0, STACK_HEIGHT])
    return Move(source, destination, target, "stage")


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


def _level_z(level: int) -> float:
    """Centre height (m) of the (level+1)-th cube of a column standing on the table."""
    return C.TABLE_TOP_Z + C.CUBE_HALF + STACK_HEIGHT * level


def _conflict(site_xy: np.ndarray, levels: range, column_xy: np.ndarray, height: int) -> bool:
    """Whether working at ``site_xy`` at any of ``levels`` hits a column of ``height`` cubes at
    ``column_xy`` (level k: the grasp point at the centre of the (k+1)-th cube of a column)."""
    if height <= 0 or len(levels) == 0:
        return False
    grasps = np.array([[site_xy[0], site_xy[1], _level_z(k)] for k in levels])
    return bool(arm_hits(grasps, column_xy, STACK_HEIGHT * height).any())


def _sites(view: WorldView, exclude: int) -> list[tuple[np.ndarray, int]]:
    """Columns that are or will be two or more cubes high: (base xy, final height) per tower,
    for bases on the table (``exclude``: a base that is being moved)."""
    heights = _tower_heights(view.task)
    sites = []
    for tower in view.task.towers:
        base = ord(tower[-1]) - ord("a")
        if len(tower) >= 2 and base != exclude and view.support[base] == TABLE:
            sites.append((view.positions[base, :2], int(heights[base])))
    return sites


def _intruder_move(view: WorldView, source: int, target: int, heights: np.ndarray) -> Move | None:
    """A move that keeps the arm from hitting a column once ``target``'s column grows.

    Cubes that still have to be picked and that the arm could not reach next to the finished
    tower are moved away first; when a cube that stays (a correct column) and the target's tower
    would get in each other's way, the target's lone base is moved instead. None while the
    source is in the hand: these moves are made before it is picked (spots for them leave room
    around it), and asking again once it is lifted would find other spots, set it down and
    pick it up again forever.
    """
    if view.held == source:
        return None
    pos = view.positions
    column = view.column(target)
    final = int(heights[target])
    t_xy = pos[target, :2]
    level_now = len(column)
    rank = {b: i for i, b in enumerate(_build_rank(view.task))}
    tower, below = _tower_of(view.task, target)
    for other in range(view.task.num_blocks):
        if other in column or other == source or other == view.held:
            continue
        o_xy = pos[other, :2]
        if np.any(np.abs(o_xy - t_xy) > 0.35):
            continue
        if not view.correct[other]:
            level = max(round((pos[other, 2] - C.CUBE_HALF) / STACK_HEIGHT), 0)
            # A cube of this tower is picked while the tower is still as low as its place in it.
            height_then = int(below[other]) if other in tower else final
            if _conflict(o_xy, range(level, level + 1), t_xy, height_then):
                move = _table_move(view, view.top_of(other), "intruder", ignore=source)
                if _moves_far(view, move):
                    return move
            continue
        other_height = int(heights[other])
        if other_height < 2:
            continue
        later = rank[other] > rank[target]
        if later:  # its tower comes later: its placements must clear our finished tower
            hit = _conflict(o_xy, range(1, other_height), t_xy, final)
        else:  # its tower is done: our placements must clear it
            hit = _conflict(t_xy, range(level_now, final), o_xy, other_height)
        if not hit:
            continue
        if view.task.target_support[target] == TABLE and level_now == 1:
            move = _table_move(view, target, "crowded base", tall_site=final >= TALL_HEIGHT,
                               ignore=source)
            if _moves_far(view, move):
                return move
        if later and view.task.target_support[other] == TABLE and view.column(other) == {other}:
            # Our base has nowhere better to go: move the later tower's lone base instead, now,
            # while our tower is still low enough not to be hit by that pick.
            move = _table_move(view, other, "crowded later base",
                               tall_site=other_height >= TALL_HEIGHT, ignore=source)
            if _moves_far(view, move):
                return move
    return None


def _moves_far(view: WorldView, move: Move) -> bool:
    """Whether a move takes its cube somewhere else (not a no-op that would repeat forever)."""
    return bool(np.linalg.norm(move.destination[:2] - view.positions[move.block, :2]) > MIN_SHIFT)


def _tower_of(task: Task, block: int) -> tuple[set[int], dict[int, int]]:
    """The blocks of ``block``'s tower, and for each how many cubes end up under it."""
    for letters in task.towers:
        blocks = [ord(letter) - ord("a") for letter in letters]  # top to bottom
        if block in blocks:
            return set(blocks), {b: len(blocks) - 1 - i for i, b in enumerate(blocks)}
    raise ValueError(f"block {block} is not in task {task.layout!r}")


def _build_rank(task: Task) -> list[int]:
    """Blocks in the order their towers are built (towers as written)."""
    return [ord(letter) - ord("a") for tower in task.towers for letter in tower]


# --- Motion ---------------------------------------------------------------------------------------
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


def _arm_travel_floor(view: WorldView, start_xy: np.ndarray, goal_xy: np.ndarray,
                      ignore: set[int]) -> float:
    """Lowest grasp-point height (m) at which the arm above the straight path from start to goal
    clears every cube's column (``arm_floor``): the forearm and elbow of a low hand sweep wide."""
    cubes = _obstacles(view, ignore)
    if len(cubes) == 0:
        return -np.inf
    path = _straight_path(start_xy, goal_xy)
    return float(np.max(arm_floor(path, cubes[:, :2], cubes[:, 2] + C.CUBE_HALF)))


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


def _steer(view: WorldView, point: np.ndarray, desired: np.ndarray, max_xy: float,
           max_z: float) -> np.ndarray:
    """Displacement of the commanded target that brings ``point`` toward ``desired``.

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


def _go_to(view: WorldView, point: np.ndarray, goal: np.ndarray, low_drop: float,
           slow_band: float, ignore: set[int], may_descend: bool) -> tuple[np.ndarray, bool]:
    """Displacement bringing ``point`` to ``goal`` by rising, crossing and descending.

    ``low_drop`` is how far the assembly's lowest point is below ``point``. Returns the
    displacement and whether ``point`` is at ``goal`` (aligned within the grasp tolerances).
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
        return _steer(view, point, desired, FAST_STEP, FAST_STEP), False
    height = point[2] - goal[2]
    desired = goal.copy()
    if not may_descend:  # hover above the contact until the fingers are open
        desired[2] = goal[2] + slow_band
    elif xy_error > GRASP_XY:  # stop just short of the goal until aligned
        desired[2] = goal[2] + 0.012
    max_z = SLOW_STEP if height < slow_band + 0.005 else FAST_STEP
    arrived = xy_error <= GRASP_XY and abs(height) <= GRASP_Z
    return _steer(view, point, desired, FAST_STEP, max_z), arrived


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

    def _retreat(self, view: WorldView) -> np.ndarray:
        """Task done: lift the open hand clear of every cube."""
        clear = float(np.max(view.positions[:, 2])) + C.CUBE_HALF + 0.05
        if view.hand[2] < clear:
            return _steer(view, view.hand, view.hand + np.array([0.0, 0.0, 0.02]),
                          FAST_STEP, FAST_STEP)
        return np.zeros(3)

    def _reach(self, view: WorldView, move: Move) -> tuple[np.ndarray, bool]:
        """Open hand: reach above the move's cube, descend around it, close at the grasp pose."""
        cube = view.positions[move.block]
        fingers_open = view.opening >= OPEN_GAP
        delta, arrived = _go_to(view, view.hand, cube, FINGERTIP_DROP, SLOW_BAND_PICK,
                                ignore=set(), may_descend=fingers_open)
        if arrived and fingers_open:
            return np.zeros(3), True
        return delta, False

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

    def _carry(self, view: WorldView, move: Move | None) -> tuple[np.ndarray, bool]:
        """A cube is held: carry it to the move's destination (or set it down) and release it."""
        held = view.held
        if move is None or move.block != held:
            move = _set_down(view, held, move)
        cube = view.positions[held]
        goal = move.destination + np.array([0.0, 0.0, RELEASE_GAP])
        delta, _ = _go_to(view, cube, goal, C.CUBE_HALF, SLOW_BAND_PLACE, ignore={held},
                          may_descend=True)
        error = goal - cube
        xy_ok = np.linalg.norm(error[:2]) <= RELEASE_XY
        height = cube[2] - goal[2]
        blocked = height <= RELEASE_Z_BLOCKED and view.hand[2] - view.target[2] > 0.004
        if xy_ok and (height <= RELEASE_Z or blocked):
            return np.zeros(3), False
        return delta, True


# --- Noise injection (DART-style) -----------------------------------------------------------------
#: Default standard deviation (m per control step, per axis) of the Gaussian noise added to the
#: executed displacement when collecting datasets: 3 mm, 15% of the maximum step and 60% of the
#: slow step near contacts. The paper injects noise into executed actions and keeps clean labels
#: but gives no level (reference/paper.md). Measured (benchmarks/expert.py, 20 episodes per stage
#: count): 3 mm costs 1.2-1.3x the clean steps per stage; 5 mm costs about 2x (up to 206 of the 250
#: steps per stage allowed), too close to the horizon on long tasks.
DEFAULT_NOISE_STD = 0.003


def noisy_action(clean: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """The action to execute: ``clean`` plus N(0, std^2) on (dx, dy, dz), clipped to +-MAX_STEP.

    The gripper command is kept. ``clean`` itself is not modified (it stays the label).
    """
    if std < 0:
        raise ValueError(f"noise std must be >= 0, got {std}")
    executed = np.array(clean, dtype=np.float32, copy=True).reshape(4)
    if std > 0:
        executed[:3] += rng.normal(0.0, std, size=3).astype(np.float32)
        executed[:3] = np.clip(executed[:3], -C.MAX_STEP, C.MAX_STEP)
    return executed


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
