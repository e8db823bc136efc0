"""Where a held cube goes when the plan does not move it (a wrong cube in the hand, or a cube
lifted before its move was due): a free table spot where the plan leaves it alone, found by
following the plan ahead as if the cube stood on the table there (``_plan_ahead``).

Frames and units: world frame, metres; spots are (x, y) centres of a cube resting on the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from envs.expert.clearance import level_z
from envs.expert.planner import Move, plan_move, tower_sites
from envs.expert.spots import SITE_SHIFTS, free_spots, has_room, leaves_room
from envs.expert.world import WorldView
from envs.tasks import TABLE

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


def set_down(view: WorldView, held: int, pending: Move | None = None) -> Move:
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
                       sites=tower_sites(view, exclude=held), count=SET_DOWN_CANDIDATES,
                       avoid=taken)
    here = view.positions[held, :2]
    # Once the cube is on its way down here, only a neighbour right below stops it: the cube's
    # drift while descending must not flip the decision back and forth.
    descending = view.positions[held, 2] < level_z(0) + SET_DOWN_COMMITTED
    clear_of_pending = bool(leaves_room(here[None], taken)[0])
    if (np.linalg.norm(spots[0] - here) > SET_DOWN_REACH and clear_of_pending
            and has_room(view.positions, {held}, here, relaxed=descending)
            and _left_here(view, held, here)):
        return Move(held, np.array([here[0], here[1], level_z(0)]), TABLE, "set down here")
    # On a crowded table the candidates are ranked, not all roomy: never trade the open fingers'
    # room (they would shove the neighbours on release) for a spot the plan leaves alone.
    roomy = has_room(view.positions, {held}, spots[0])
    for spot in spots:
        if roomy and not has_room(view.positions, {held}, spot):
            continue
        if _stays(view, held, spot):
            return Move(held, np.array([spot[0], spot[1], level_z(0)]), TABLE, "set down")
    again = _plan_if_set_down(view, held, spots[0])
    if _to_table(again, held):
        return Move(held, again.destination, TABLE, "set down clear")
    return Move(held, np.array([spots[0][0], spots[0][1], level_z(0)]), TABLE, "set down")


def _left_here(view: WorldView, held: int, xy: np.ndarray) -> bool:
    """Whether the plan leaves the held cube set down at ``xy`` (m) alone: its next move is
    another cube's and no later one moves it to the table (``_moved_again``)."""
    moves = _plan_ahead(view, held, xy)
    first = next(moves, None)
    return first is None or (first.block != held and _table_move_of(held, moves) is None)


def _stays(view: WorldView, held: int, xy: np.ndarray) -> bool:
    """Whether the plan leaves the held cube on the table at ``xy`` (m): also when it lands a
    centimetre off (``SITE_SHIFTS``), and over the plan's next moves (``_moved_again``)."""
    for shift in SITE_SHIFTS[1:]:
        if _to_table(_plan_if_set_down(view, held, xy + shift), held):
            return False
    return _moved_again(view, held, xy) is None


def _moved_again(view: WorldView, held: int, xy: np.ndarray) -> Move | None:
    """The table move the plan would give the held cube if it stood on the table at ``xy`` (m).

    The plan's next ``SET_DOWN_LOOKAHEAD`` moves are followed (each as if done): the cube must
    not be the plan's next move, and not a later intruder either once the cubes moved before it
    are gone. None when the plan leaves the cube there (or puts it on its tower).
    """
    return _table_move_of(held, _plan_ahead(view, held, xy))


def _table_move_of(held: int, moves: Iterator[Move]) -> Move | None:
    """The first of ``moves`` that moves ``held``, if it puts it on the table; else None."""
    move = next((move for move in moves if move.block == held), None)
    return move if _to_table(move, held) else None


def _plan_if_set_down(view: WorldView, held: int, xy: np.ndarray) -> Move | None:
    """The plan's next move if the held cube stood on the table at ``xy`` (m) instead."""
    return next(_plan_ahead(view, held, xy), None)


def _plan_ahead(view: WorldView, held: int, xy: np.ndarray) -> Iterator[Move]:
    """The plan's next moves (at most ``SET_DOWN_LOOKAHEAD``, each as if done) if the held cube
    stood on the table at ``xy`` (m) instead; lazily, so a caller that stops early plans no more.
    """
    positions = view.positions.copy()
    positions[held] = [xy[0], xy[1], level_z(0)]
    for _ in range(SET_DOWN_LOOKAHEAD):
        move = plan_move(replace(view, positions=positions, held=-1))
        if move is None:
            return
        yield move
        positions = positions.copy()
        positions[move.block] = move.destination


def _to_table(move: Move | None, held: int) -> bool:
    """Whether ``move`` puts the cube ``held`` on the table."""
    return move is not None and move.block == held and move.support == TABLE
