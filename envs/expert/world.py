"""What the expert reads of the world: the privileged state (``observe``) as a ``WorldView``, and
the relations it derives from it: the cube in the hand, the cube each cube rests on, the cubes
already in their final place, and the columns they form.

Frames and units: world frame, metres; the table top at z = ``constants.TABLE_TOP_Z``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from envs import constants as C
from envs.predicates import Z_TOLERANCE, support_of
from envs.tasks import IN_AIR, TABLE, Task

# --- Gripper --------------------------------------------------------------------------------------
#: Finger gap (m) above which the fingers count as open, and at most which a cube touching both
#: fingers counts as held (a tilted cube is up to 7 cm wide).
OPEN_GAP = 0.07
HELD_GAP = 0.066
#: Finger gap (m) below which a closed gripper has missed its cube.
EMPTY_GAP = 0.03

#: A cube counts as resting on the table when its centre is this close to half a cube high (m).
TABLE_Z_TOLERANCE = Z_TOLERANCE


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
        """(n,) the cube each cube rests on geometrically, ``TABLE`` on the table, ``IN_AIR``
        otherwise.

        The held cube rests on nothing (``IN_AIR``).
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
    """Read the privileged state of a ``BlockStackEnv`` (wrapped or not).

    Only reads the env passed in (its simulator, robot and scene): nothing here imports PyBullet.
    """
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


def _geometric_support(positions: np.ndarray, held: int) -> np.ndarray:
    """(n,) per cube: the cube it rests on (the paper's stage test, ``predicates.support_of``),
    else ``TABLE`` when its centre is half a cube above the table top (within
    ``TABLE_Z_TOLERANCE``), else ``IN_AIR``; the held cube (``held`` >= 0) is ``IN_AIR``.

    ``positions``: (n, 3) cube centres (m, world). Unlike ``support_of`` every cube but the held
    one counts as free, moving or not: the expert acts on where the cubes are now.
    """
    free = np.ones(len(positions), dtype=bool)
    if held >= 0:
        free[held] = False
    on_block = support_of(positions, free)  # (n,) block index, or TABLE when on no block
    on_table = np.abs(positions[:, 2] - (C.TABLE_TOP_Z + C.CUBE_HALF)) <= TABLE_Z_TOLERANCE
    support = np.where(on_block >= 0, on_block, np.where(on_table, TABLE, IN_AIR))
    if held >= 0:
        support[held] = IN_AIR
    return support


def _correct_blocks(task: Task, support: np.ndarray) -> np.ndarray:
    """(n,) bool: each cube rests on its target support, recursively down to the table."""
    correct = np.zeros(task.num_blocks, dtype=bool)
    for tower in task.tower_blocks:  # top to bottom
        ok = True
        for block in reversed(tower):  # bottom up
            ok = ok and support[block] == task.target_support[block]
            correct[block] = ok
    return correct
