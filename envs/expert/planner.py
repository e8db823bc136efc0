"""The plan: the next pick-and-place (``Move``) for the current layout (``plan_move``).

In order of precedence: put every cube back on the table when all stages are done but some cube
rests wrongly; place a tower's base (near ``TALL_SITE`` for a tall tower); clear a base resting on
a wrong support, then the stage's target; move cubes out of the way of a tower about to grow
(``_intruder_move``); clear the stage's source; and finally put the source on the target.

Frames and units: world frame, metres; destinations are cube centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs import constants as C
from envs.expert.clearance import conflict
from envs.expert.spots import free_spots
from envs.expert.world import WorldView
from envs.predicates import STACK_HEIGHT
from envs.tasks import TABLE

#: Towers of at least this many cubes are built near ``TALL_SITE`` (reach; sim-notes item 7).
TALL_HEIGHT = 7
TALL_SITE = np.array([0.45, 0.0])
#: Where a tall tower's base is accepted (half extents around ``TALL_SITE``, m) ...
TALL_ACCEPT = np.array([0.08, 0.14])
#: ... and where it is moved to when outside (m).
TALL_TARGET = np.array([0.06, 0.12])
#: A relocation shorter than this (m) is not worth a move (and would repeat forever).
MIN_SHIFT = 0.02
#: Cubes farther than this (m, along x or y) from the column about to grow are not checked as in
#: its way.
INTRUDER_REACH = 0.35


@dataclass(frozen=True)
class Move:
    """One pick-and-place: put cube ``block`` with its centre at ``destination`` (m, world).

    ``support`` is the cube it goes on (``TABLE`` for the table); ``reason`` is for logs.
    """

    block: int
    destination: np.ndarray
    support: int
    reason: str


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
    tall = task.tower_heights[target] >= TALL_HEIGHT
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
    move = _intruder_move(view, source, target)
    if move is not None:
        return move
    move = _clear_then(view, source, "source")
    if move is not None:
        return move
    destination = pos[target] + np.array([0.0, 0.0, STACK_HEIGHT])
    return Move(source, destination, target, "stage")


def _clear_then(view: WorldView, block: int, reason: str) -> Move | None:
    """If something stands on ``block``, the move that takes the top of that stack away."""
    top = view.top_of(block)
    if top != block:
        return _table_move(view, top, f"clear {reason}")
    return None


def _intruder_move(view: WorldView, source: int, target: int) -> Move | None:
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
    task, pos = view.task, view.positions
    column = view.column(target)
    final = task.tower_heights[target]
    t_xy = pos[target, :2]
    level_now = len(column)
    for other in range(task.num_blocks):
        if other in column or other == source or other == view.held:
            continue
        o_xy = pos[other, :2]
        if np.any(np.abs(o_xy - t_xy) > INTRUDER_REACH):
            continue
        if not view.correct[other]:
            level = max(round((pos[other, 2] - C.CUBE_HALF) / STACK_HEIGHT), 0)
            # A cube of this tower is picked while the tower is still as low as its place in it.
            same_tower = task.tower_of[other] == task.tower_of[target]
            height_then = task.blocks_below[other] if same_tower else final
            if conflict(o_xy, range(level, level + 1), t_xy, height_then):
                move = _table_move(view, view.top_of(other), "intruder", ignore=source)
                if _moves_far(view, move):
                    return move
            continue
        other_height = task.tower_heights[other]
        if other_height < 2:
            continue
        later = task.build_rank[other] > task.build_rank[target]
        if later:  # its tower comes later: its placements must clear our finished tower
            hit = conflict(o_xy, range(1, other_height), t_xy, final)
        else:  # its tower is done: our placements must clear it
            hit = conflict(t_xy, range(level_now, final), o_xy, other_height)
        if not hit:
            continue
        if task.target_support[target] == TABLE and level_now == 1:
            move = _table_move(view, target, "crowded base", tall_site=final >= TALL_HEIGHT,
                               ignore=source)
            if _moves_far(view, move):
                return move
        if later and task.target_support[other] == TABLE and view.column(other) == {other}:
            # Our base has nowhere better to go: move the later tower's lone base instead, now,
            # while our tower is still low enough not to be hit by that pick.
            move = _table_move(view, other, "crowded later base",
                               tall_site=other_height >= TALL_HEIGHT, ignore=source)
            if _moves_far(view, move):
                return move
    return None


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
                    tower_sites(view, exclude=block), avoid=np.array(keep_off).reshape(-1, 2))[0]
    destination = np.array([xy[0], xy[1], C.TABLE_TOP_Z + C.CUBE_HALF])
    return Move(block, destination, TABLE, reason)


def tower_sites(view: WorldView, exclude: int) -> list[tuple[np.ndarray, int]]:
    """Columns that are or will be two or more cubes high: (base xy (m), final height in cubes)
    per tower, for bases on the table (``exclude``: a base that is being moved)."""
    sites = []
    for tower in view.task.tower_blocks:  # top to bottom
        base = tower[-1]
        if len(tower) >= 2 and base != exclude and view.support[base] == TABLE:
            sites.append((view.positions[base, :2], len(tower)))
    return sites


def _moves_far(view: WorldView, move: Move) -> bool:
    """Whether a move takes its cube somewhere else (not a no-op that would repeat forever)."""
    return bool(np.linalg.norm(move.destination[:2] - view.positions[move.block, :2]) > MIN_SHIFT)
