"""Stage and failure predicates on hand-built block states (no simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from envs.predicates import (
    DEFAULT_WORKSPACE,
    FAILURE_CLASSES,
    STACK_HEIGHT,
    Workspace,
    classify_failure,
    has_incompatible_relation,
    irrecoverable_blocks,
    is_irrecoverable,
    is_success,
    rests_on,
    stages_completed,
    support_of,
)
from envs.tasks import TABLE, parse_task

HALF = 0.025  # half a cube: the centre height of a block on the table (z = 0)


def on_table(x: float, y: float) -> list[float]:
    return [x, y, HALF]


def above(lower: list[float], dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> list[float]:
    return [lower[0] + dx, lower[1] + dy, lower[2] + STACK_HEIGHT + dz]


def state(*xyz: list[float], free: list[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    positions = np.array(xyz, dtype=float)
    mask = np.ones(len(positions), bool) if free is None else np.array(free)
    return positions, mask


def test_failure_classes() -> None:
    assert FAILURE_CLASSES == ("recoverable_failure", "manipulation_failure", "wrong_move")


def test_correct_tower_is_success() -> None:
    task = parse_task("abc")
    c = on_table(0.5, 0.0)
    b = above(c)
    a = above(b)
    positions, free = state(a, b, c)
    assert list(support_of(positions, free)) == [1, 2, TABLE]
    assert stages_completed(task, positions, free) == 2
    assert is_success(task, positions, free)
    assert not has_incompatible_relation(task, positions, free)
    assert classify_failure(task, positions, free) is None


@pytest.mark.parametrize(
    ("dx", "dy", "dz", "expected"),
    [
        (0.019, 0.0, 0.0, True),
        (0.021, 0.0, 0.0, False),
        (0.0, -0.019, 0.0, True),
        (0.0, -0.021, 0.0, False),
        (0.019, 0.019, 0.0, True),  # per-axis tolerance, not a radius
        (0.0, 0.0, 0.004, True),  # 5.4 cm above
        (0.0, 0.0, 0.006, False),  # 5.6 cm above
        (0.0, 0.0, -0.004, True),  # 4.6 cm above
        (0.0, 0.0, -0.006, False),  # 4.4 cm above
    ],
)
def test_rests_on_tolerances(dx: float, dy: float, dz: float, expected: bool) -> None:
    lower = on_table(0.4, 0.1)
    assert rests_on(np.array(above(lower, dx, dy, dz)), np.array(lower)) is expected


def test_rests_on_is_directed() -> None:
    lower = on_table(0.4, 0.1)
    upper = above(lower)
    assert rests_on(upper, lower)
    assert not rests_on(lower, upper)


def test_held_block_on_target_does_not_count() -> None:
    task = parse_task("ab")
    b = on_table(0.5, 0.0)
    positions, free = state(above(b), b, free=[False, True])
    assert list(support_of(positions, free)) == [TABLE, TABLE]
    assert stages_completed(task, positions, free) == 0
    assert not is_success(task, positions, free)
    assert classify_failure(task, positions, free) == "recoverable_failure"


def test_stages_count_only_in_build_order() -> None:
    task = parse_task("abc")  # stages: (b on c), then (a on b)
    b = on_table(0.4, 0.0)
    c = on_table(0.55, 0.0)
    positions, free = state(above(b), b, c)  # a on b, but b not yet on c
    assert stages_completed(task, positions, free) == 0
    assert not has_incompatible_relation(task, positions, free)  # a on b is still wanted
    assert classify_failure(task, positions, free) == "recoverable_failure"


def test_partial_progress_counts_prefix() -> None:
    task = parse_task("ab cde")  # stages: (a on b), (d on e), (c on d)
    b = on_table(0.35, 0.1)
    e = on_table(0.5, -0.1)
    c = on_table(0.6, 0.1)
    positions, free = state(above(b), b, c, above(e), e)
    assert stages_completed(task, positions, free) == 2
    assert not is_success(task, positions, free)
    assert classify_failure(task, positions, free) == "recoverable_failure"


def test_wrong_tower_is_wrong_move() -> None:
    task = parse_task("ab c")
    a = on_table(0.4, 0.0)
    b = on_table(0.55, 0.1)
    positions, free = state(a, b, above(a))  # c on a: c must stay on the table
    assert has_incompatible_relation(task, positions, free)
    assert classify_failure(task, positions, free) == "wrong_move"


def test_block_on_wrong_target_is_wrong_move() -> None:
    task = parse_task("abc")
    b = on_table(0.4, 0.0)
    c = on_table(0.55, 0.1)
    positions, free = state(above(c), b, c)  # a on c instead of b
    assert stages_completed(task, positions, free) == 0
    assert classify_failure(task, positions, free) == "wrong_move"


def test_all_stages_on_a_misplaced_base_is_not_success() -> None:
    task = parse_task("ab c")
    c = on_table(0.5, 0.0)
    b = above(c)  # b's target is the table
    positions, free = state(above(b), b, c)
    assert stages_completed(task, positions, free) == 1
    assert not is_success(task, positions, free)
    assert classify_failure(task, positions, free) == "wrong_move"


def test_block_below_table_is_manipulation_failure() -> None:
    task = parse_task("ab c")
    a = on_table(0.4, 0.0)
    c = on_table(0.55, 0.1)
    fallen = [0.9, 0.0, -0.5]
    positions, free = state(above(a), fallen, c)  # also a wrong move: manipulation wins
    assert is_irrecoverable(positions)
    assert classify_failure(task, positions, free) == "manipulation_failure"


def test_below_table_margin() -> None:
    sunk = np.array([[0.4, 0.0, -0.009], [0.5, 0.0, HALF]])
    fallen = np.array([[0.4, 0.0, -0.011], [0.5, 0.0, HALF]])
    assert not is_irrecoverable(sunk)
    assert list(irrecoverable_blocks(fallen)) == [True, False]


def test_outside_workspace_is_irrecoverable() -> None:
    positions = np.array([on_table(0.4, 0.0), on_table(0.4, 0.5)])
    assert is_irrecoverable(positions)
    wide = Workspace(x_min=0.0, x_max=1.0, y_min=-1.0, y_max=1.0, table_z=0.0)
    assert not is_irrecoverable(positions, workspace=wide)
    raised = Workspace(x_min=0.0, x_max=1.0, y_min=-1.0, y_max=1.0, table_z=0.2)
    assert is_irrecoverable(positions, workspace=raised)


def test_non_finite_is_irrecoverable() -> None:
    positions = np.array([on_table(0.4, 0.0), [np.nan, 0.0, HALF]])
    assert is_irrecoverable(positions)
    assert classify_failure(parse_task("ab"), positions, np.ones(2, bool)) == (
        "manipulation_failure"
    )
    ok = np.array([on_table(0.4, 0.0), on_table(0.5, 0.0)])
    assert not is_irrecoverable(ok, np.zeros((2, 3)))
    assert is_irrecoverable(ok, np.array([[0.0, 0.0, 0.0], [np.inf, 0.0, 0.0]]))


def test_exploding_speed_is_irrecoverable() -> None:
    positions = np.array([on_table(0.4, 0.0), on_table(0.5, 0.0)])
    assert not is_irrecoverable(positions, np.array([[0.0, 0.0, 0.0], [3.0, 0.0, -3.0]]))
    assert is_irrecoverable(positions, np.array([[0.0, 0.0, 0.0], [4.0, 0.0, -4.0]]))


def test_nan_positions_never_rest() -> None:
    positions, free = state([np.nan, np.nan, np.nan], on_table(0.5, 0.0))
    assert list(support_of(positions, free)) == [TABLE, TABLE]


def test_closest_support_wins() -> None:
    # Interpenetrating lower blocks (impossible physically) both within tolerance.
    positions, free = state([0.5, 0.0, 0.075], [0.515, 0.0, HALF], [0.49, 0.0, HALF])
    assert support_of(positions, free)[0] == 2
    # Exactly as close to both (dyadic coordinates): the lower index.
    positions, free = state([0.5078125, 0.0, 0.075], [0.515625, 0.0, HALF], [0.5, 0.0, HALF])
    assert support_of(positions, free)[0] == 1


def test_shape_checks() -> None:
    task = parse_task("ab")
    with pytest.raises(ValueError, match="2 blocks, got 3 positions"):
        stages_completed(task, np.zeros((3, 3)), np.ones(3, bool))
    with pytest.raises(ValueError, match="free must have shape"):
        support_of(np.zeros((2, 3)), np.ones(3, bool))
    with pytest.raises(ValueError, match="positions must have shape"):
        support_of(np.zeros((2, 2)), np.ones(2, bool))


def test_default_workspace() -> None:
    assert DEFAULT_WORKSPACE.table_z == 0.0
    with pytest.raises(ValueError, match="empty workspace"):
        Workspace(x_min=1.0, x_max=0.0, y_min=-1.0, y_max=1.0)
