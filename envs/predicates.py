"""Stage, success and failure predicates: pure functions of the blocks' state.

Frames and units: world frame, metres, seconds. ``positions`` is an ``(n, 3)`` array of block
centres, row ``i`` for block index ``i`` (a = 0) of a task with ``n`` blocks. ``free`` is an
``(n,)`` bool array computed by the simulator: the block is settled (slow) and not held by the
gripper. Blocks are 5 cm cubes; the table top is the plane ``z = workspace.table_z``.

Relations (paper, reference/paper.md "Stage-complete test"):

- Block u *rests on* block l when u's centre is within ``XY_TOLERANCE`` of l's in x and in y, and
  ``STACK_HEIGHT +- Z_TOLERANCE`` above it in z. ``support_of`` adds that u must be free.
- A stage (u on l) is complete when u is free and rests on l. Stages count in build order only:
  ``stages_completed`` is the length of the longest complete prefix of ``task.stages``.
- Success: every block rests on its target support and no block rests where it should not
  (equivalently: all stages complete and no incompatible relation; the second part only matters
  when a tower's bottom block, whose target is the table, rests on another block).
- Incompatible relation: some block rests on a block other than its target (a block whose target
  is the table resting on any block counts). No later stacking can undo it without unstacking.
- Irrecoverable state: a block off the table (its centre clearly below the table top), outside the
  workspace in x or y, non-finite, or moving faster than ``MAX_BLOCK_SPEED`` (the physics exploded).

Failure classes at episode end (paper appendix B.4), decided by ``classify_failure`` with this
precedence:

1. success -> ``None``;
2. irrecoverable state -> ``"manipulation_failure"``;
3. incompatible relation -> ``"wrong_move"``;
4. otherwise -> ``"recoverable_failure"`` (time ran out on a layout that can still be finished).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.tasks import TABLE, Task

# Paper (development code, reference/paper.md): a stage is complete when the upper block is
# within 2 cm of the lower in x and y, and 5 +- 0.5 cm above it in z (5 cm cubes).
XY_TOLERANCE = 0.02
STACK_HEIGHT = 0.05
Z_TOLERANCE = 0.005

# Our choices (the paper gives no numbers for irrecoverable states).
#: A block resting on the table has its centre half a cube (2.5 cm) above the table top. A centre
#: more than this far BELOW the table top (3.5 cm below resting height) means the block fell off.
BELOW_TABLE_MARGIN = 0.01
#: A block faster than this (m/s) is being thrown around or the simulation exploded; the robot
#: moves the hand at most 0.4 m/s, so a held or pushed block never comes close.
MAX_BLOCK_SPEED = 5.0

WRONG_MOVE = "wrong_move"
MANIPULATION_FAILURE = "manipulation_failure"
RECOVERABLE_FAILURE = "recoverable_failure"
#: Every failure class, in the order reports list them (``failure_class`` holds the precedence).
FAILURE_CLASSES = (RECOVERABLE_FAILURE, MANIPULATION_FAILURE, WRONG_MOVE)


@dataclass(frozen=True)
class Workspace:
    """The region where blocks can be manipulated (m, world frame; robot base at the origin).

    ``x_min..x_max`` and ``y_min..y_max`` bound block centres in the horizontal plane;
    ``table_z`` is the height of the table's top surface.
    """

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    table_z: float = 0.0

    def __post_init__(self) -> None:
        if not (self.x_min < self.x_max and self.y_min < self.y_max):
            raise ValueError(f"empty workspace: {self}")

    def contains_xy(self, positions: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: whether each ``(n, 3)`` position lies inside the bounds in x and y."""
        x, y = positions[:, 0], positions[:, 1]
        return (x >= self.x_min) & (x <= self.x_max) & (y >= self.y_min) & (y <= self.y_max)


#: Default workspace: the table top at z = 0, blocks within reach of the Panda pointing down.
DEFAULT_WORKSPACE = Workspace(x_min=0.15, x_max=0.85, y_min=-0.45, y_max=0.45, table_z=0.0)


def rests_on(upper_xyz: np.ndarray, lower_xyz: np.ndarray) -> bool:
    """Whether a block centred at ``upper_xyz`` sits on one centred at ``lower_xyz`` (m).

    Geometry only (the paper's stage test); whether the upper block is held is not considered.
    """
    upper = _as_array(upper_xyz, (3,), "upper_xyz")
    lower = _as_array(lower_xyz, (3,), "lower_xyz")
    return bool(_rests(upper - lower))


def support_of(positions: np.ndarray, free: np.ndarray) -> np.ndarray:
    """``(n,)`` int: for each block, the index of the block it rests on, or ``TABLE`` (-1) when
    it rests on no block (the table itself is not checked: see ``envs.tasks.TABLE``).

    A held or moving block (``free`` False) rests on no block. Should a block rest on several
    blocks (only possible with interpenetrating cubes), the one closest in x-y is chosen, the
    lowest index among equally close ones.
    """
    pos = _as_positions(positions)
    free = _as_mask(free, len(pos))
    offsets = pos[:, None, :] - pos[None, :, :]  # (n, n, 3): upper i minus lower j
    # A block never rests on itself: its zero offset fails the height test.
    candidate = _rests(offsets) & free[:, None]  # (n, n)
    count = candidate.sum(axis=1)
    if count.max(initial=0) > 1:  # ambiguous: take the closest in x-y
        xy_distance = np.where(candidate, np.hypot(offsets[..., 0], offsets[..., 1]), np.inf)
        return np.where(count > 0, xy_distance.argmin(axis=1), TABLE)
    return np.where(count > 0, candidate.argmax(axis=1), TABLE)


@dataclass(frozen=True)
class LayoutStatus:
    """Everything the stage and success predicates derive from one support computation.

    Attributes:
        support: ``(n,)`` int, the block each block rests on (``TABLE`` if none).
        stage: stages complete in build order.
        success: every block rests exactly on its target support.
        incompatible: some block rests on a block other than its target support.
    """

    support: np.ndarray
    stage: int
    success: bool
    incompatible: bool


def layout_status(task: Task, positions: np.ndarray, free: np.ndarray) -> LayoutStatus:
    """Stage count, success and incompatibility of a layout, from a single ``support_of`` call."""
    support = _task_support(task, positions, free)
    rests = support.tolist()  # plain ints: for 2..10 blocks Python beats numpy here
    stage = 0
    for source, target in task.stages:
        if rests[source] != target:
            break
        stage += 1
    targets = task.target_support
    return LayoutStatus(
        support=support,
        stage=stage,
        success=rests == list(targets),
        incompatible=any(r not in (TABLE, t) for r, t in zip(rests, targets, strict=True)),
    )


def stages_completed(task: Task, positions: np.ndarray, free: np.ndarray) -> int:
    """Number of stages complete in build order: the longest complete prefix of ``task.stages``."""
    return layout_status(task, positions, free).stage


def is_success(task: Task, positions: np.ndarray, free: np.ndarray) -> bool:
    """Whether the blocks form the task's layout: every block rests exactly on its target."""
    return layout_status(task, positions, free).success


def has_incompatible_relation(task: Task, positions: np.ndarray, free: np.ndarray) -> bool:
    """Whether some block rests on a block that is not its target support."""
    return layout_status(task, positions, free).incompatible


def irrecoverable_blocks(
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
    *,
    workspace: Workspace = DEFAULT_WORKSPACE,
) -> np.ndarray:
    """``(n,)`` bool: blocks that are lost for good.

    A block is lost when its position or velocity is not finite, its centre is more than
    ``BELOW_TABLE_MARGIN`` below the table top, it lies outside the workspace in x or y, or its
    speed (``velocities``: ``(n, 3)`` linear velocities, m/s, world frame) exceeds
    ``MAX_BLOCK_SPEED``.
    """
    pos = _as_positions(positions)
    lost = ~np.isfinite(pos).all(axis=1)
    lost |= pos[:, 2] < workspace.table_z - BELOW_TABLE_MARGIN
    lost |= ~workspace.contains_xy(pos)
    if velocities is not None:
        vel = _as_array(velocities, pos.shape, "velocities")
        lost |= ~np.isfinite(vel).all(axis=1)
        lost |= np.einsum("ij,ij->i", vel, vel) > MAX_BLOCK_SPEED**2
    return lost


def is_irrecoverable(
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
    *,
    workspace: Workspace = DEFAULT_WORKSPACE,
) -> bool:
    """Whether any block is lost for good (see ``irrecoverable_blocks``).

    Same test as ``irrecoverable_blocks(...).any()``, written with whole-array reductions because
    the env evaluates it on every control step.
    """
    pos = _as_positions(positions)
    # NaN propagates through min/max and fails every comparison, so it counts as lost too.
    low = (workspace.x_min, workspace.y_min, workspace.table_z - BELOW_TABLE_MARGIN)
    high = (workspace.x_max, workspace.y_max, np.inf)
    if not ((pos.min(axis=0) >= low).all() and (pos.max(axis=0) <= high).all()):
        return True
    if velocities is None:
        return False
    vel = _as_array(velocities, pos.shape, "velocities")
    return not np.einsum("ij,ij->i", vel, vel).max() <= MAX_BLOCK_SPEED**2


def classify_failure(
    task: Task,
    positions: np.ndarray,
    free: np.ndarray,
    velocities: np.ndarray | None = None,
    *,
    workspace: Workspace = DEFAULT_WORKSPACE,
) -> str | None:
    """The episode's outcome at its end: ``None`` on success, else one of ``FAILURE_CLASSES``.

    Precedence: success, then manipulation failure, then wrong move, then recoverable failure.
    """
    status = layout_status(task, positions, free)
    return failure_class(status, is_irrecoverable(positions, velocities, workspace=workspace))


def failure_class(status: LayoutStatus, irrecoverable: bool) -> str | None:
    """The failure class for an already computed layout status (the precedence lives here)."""
    if status.success:
        return None
    if irrecoverable:
        return MANIPULATION_FAILURE
    if status.incompatible:
        return WRONG_MOVE
    return RECOVERABLE_FAILURE


_REST_OFFSET = np.array([0.0, 0.0, STACK_HEIGHT])
_REST_TOLERANCE = np.array([XY_TOLERANCE, XY_TOLERANCE, Z_TOLERANCE])


def _rests(offsets: np.ndarray) -> np.ndarray:
    """Stage test on ``(..., 3)`` offsets (upper centre minus lower centre, m); NaN gives False."""
    return (np.abs(offsets - _REST_OFFSET) <= _REST_TOLERANCE).all(axis=-1)


def _task_support(task: Task, positions: np.ndarray, free: np.ndarray) -> np.ndarray:
    support = support_of(positions, free)
    if len(support) != task.num_blocks:
        raise ValueError(
            f"task {task.layout!r} has {task.num_blocks} blocks, got {len(support)} positions"
        )
    return support


def _as_array(value: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    return array


def _as_positions(positions: np.ndarray) -> np.ndarray:
    array = np.asarray(positions, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"positions must have shape (n, 3), got {array.shape}")
    return array


def _as_mask(free: np.ndarray, n: int) -> np.ndarray:
    mask = np.asarray(free, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"free must have shape ({n},), got {mask.shape}")
    return mask
