"""The stacking scene inside a ``Sim``: the table, the cubes, their initial placement and state.

Cubes are 5 cm boxes named by letter (a = slot 0). Initial placement: centres sampled uniformly
in ``SPAWN_X`` x ``SPAWN_Y`` (world frame, m), resting on the table, at least ``SPAWN_MIN_SPACING``
apart, yaw uniform in +-``SPAWN_MAX_YAW``; rejection sampling driven by the caller's generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs import constants as C
from envs.predicates import DEFAULT_WORKSPACE, Workspace
from envs.sim import Sim
from envs.tasks import BLOCK_LETTERS

#: Attempts at drawing a whole layout before the sampler gives up (never reached in practice:
#: 10 cubes at 10 cm spacing fill about a third of the spawn region).
_MAX_LAYOUT_ATTEMPTS = 1000

#: The region where the predicates consider a cube still usable (m, world frame).
WORKSPACE: Workspace = DEFAULT_WORKSPACE


@dataclass(frozen=True)
class BlockState:
    """A snapshot of the cubes. Rows are block slots (a, b, ...); world frame, m and m/s.

    Attributes:
        positions: (n, 3) cube centres.
        velocities: (n, 3) linear velocities.
        free: (n,) True when the cube is settled (speed below ``SETTLED_SPEED``) and not touched
            by the robot.
        touching_robot: (n,) True when the cube touches any link of the robot.
    """

    positions: np.ndarray
    velocities: np.ndarray
    free: np.ndarray
    touching_robot: np.ndarray


def sample_layout(num_blocks: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Initial cube centres (n, 3) and yaws (n,) for ``num_blocks`` cubes resting on the table."""
    for _ in range(_MAX_LAYOUT_ATTEMPTS):
        xy = np.empty((0, 2))
        for _ in range(200):
            candidate = rng.uniform((C.SPAWN_X[0], C.SPAWN_Y[0]), (C.SPAWN_X[1], C.SPAWN_Y[1]))
            gaps = np.linalg.norm(xy - candidate, axis=1)
            if len(xy) == 0 or gaps.min() >= C.SPAWN_MIN_SPACING:
                xy = np.vstack([xy, candidate])
                if len(xy) == num_blocks:
                    z = np.full((num_blocks, 1), C.TABLE_TOP_Z + C.CUBE_HALF)
                    yaws = rng.uniform(-C.SPAWN_MAX_YAW, C.SPAWN_MAX_YAW, size=num_blocks)
                    return np.hstack([xy, z]), yaws
    raise RuntimeError(f"could not place {num_blocks} cubes {C.SPAWN_MIN_SPACING} m apart")


class Scene:
    """Table and cubes of one episode, built in ``sim`` (call after ``Sim.reset_world``)."""

    def __init__(self, sim: Sim, num_blocks: int, positions: np.ndarray, yaws: np.ndarray,
                 robot_body: int):
        self.sim = sim
        self.num_blocks = num_blocks
        self.robot_body = robot_body
        table_center = (C.TABLE_CENTER_X, 0.0, C.TABLE_TOP_Z - C.TABLE_HALF_EXTENTS[2])
        self.table = sim.create_box("table", C.TABLE_HALF_EXTENTS, table_center,
                                    (0.78, 0.68, 0.55, 1.0), mass=0.0)
        sim.set_friction(self.table, -1, C.CUBE_LATERAL_FRICTION)
        floor_center = (0.0, 0.0, C.FLOOR_Z - 0.05)
        self.floor = sim.create_box("floor", (3.0, 3.0, 0.05), floor_center,
                                    (0.35, 0.35, 0.38, 1.0), mass=0.0)
        self.cubes: list[int] = []
        half = (C.CUBE_HALF, C.CUBE_HALF, C.CUBE_HALF)
        for slot in range(num_blocks):
            letter = BLOCK_LETTERS[slot]
            body = sim.create_box(f"cube_{letter}", half, positions[slot], C.CUBE_COLORS[letter],
                                  mass=C.CUBE_MASS, yaw=float(yaws[slot]))
            sim.set_friction(body, -1, C.CUBE_LATERAL_FRICTION, C.CUBE_SPINNING_FRICTION)
            self.cubes.append(body)

    def read(self) -> BlockState:
        """Read positions, velocities and contacts of every cube now."""
        positions = self.sim.base_positions(self.cubes)
        velocities = self.sim.base_velocities(self.cubes)
        touched = self.sim.touching(self.robot_body)
        touching = np.array([c in touched for c in self.cubes])
        settled = np.einsum("ij,ij->i", velocities, velocities) < C.SETTLED_SPEED**2
        return BlockState(positions, velocities, settled & ~touching, touching)

    def place(self, slot: int, position: np.ndarray, yaw: float = 0.0) -> None:
        """Teleport one cube (tests and perturbation experiments); its velocity is zeroed."""
        self.sim.reset_base_pose(self.cubes[slot], position, yaw)
