"""Task layouts: parsing, validation, stages in build order, target supports."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest

from envs.tasks import (
    BLOCK_LETTERS,
    IN_AIR,
    MAX_BLOCKS,
    MIN_BLOCKS,
    TABLE,
    Stage,
    Task,
    TaskClass,
    parse_task,
    parse_task_class,
    task_classes,
)


def stages_as_letters(task: Task) -> list[str]:
    return [str(stage) for stage in task.stages]


def test_constants() -> None:
    assert BLOCK_LETTERS == "abcdefghij"
    assert (MIN_BLOCKS, MAX_BLOCKS) == (2, 10)


def test_paper_example() -> None:
    task = parse_task("ab cde fg hij")
    assert task.towers == ("ab", "cde", "fg", "hij")
    assert task.num_blocks == 10
    assert task.num_towers == 4
    assert task.num_stages == 6
    assert task.blocks == "abcdefghij"


def test_stages_in_build_order() -> None:
    # Towers in the order written, each bottom-up.
    task = parse_task("ab cde")
    assert task.stages == (Stage(0, 1), Stage(3, 4), Stage(2, 3))
    assert stages_as_letters(task) == ["a on b", "d on e", "c on d"]
    assert stages_as_letters(parse_task("cd ab")) == ["c on d", "a on b"]
    assert stages_as_letters(parse_task("c abde")) == ["d on e", "b on d", "a on b"]


def test_target_support() -> None:
    task = parse_task("ab cde")
    assert task.target_support == (1, TABLE, 3, 4, TABLE)
    assert parse_task("ba c").target_support == (TABLE, 0, TABLE)


def test_support_markers_are_no_block_index_and_differ() -> None:
    assert TABLE == -1 and IN_AIR == -2  # below every block index (0 and up)


def test_towers_as_block_indices_and_each_block_s_place_in_its_tower() -> None:
    task = parse_task("ab cde f")
    assert task.tower_blocks == ((0, 1), (2, 3, 4), (5,))
    assert task.tower_of == (0, 0, 1, 1, 1, 2)
    assert task.tower_heights == (2, 2, 3, 3, 3, 1)
    assert task.blocks_below == (1, 0, 2, 1, 0, 0)
    assert parse_task("c abde").tower_of == (1, 1, 0, 1, 1)


def test_build_order_is_towers_as_written_each_bottom_up() -> None:
    task = parse_task("c abde")
    assert task.build_order == (2, 4, 3, 1, 0)
    assert task.build_rank == (4, 3, 0, 2, 1)


@pytest.mark.parametrize("layout", ["ab cde fg hij", "c abde", "ji hg fe dc ba", "jcdeh igabf",
                                    "b a c ed"])
def test_tower_facts_agree_with_the_towers_and_the_stages(layout: str) -> None:
    task = parse_task(layout)
    for block in range(task.num_blocks):
        tower = task.tower_blocks[task.tower_of[block]]
        assert BLOCK_LETTERS[block] in task.towers[task.tower_of[block]]
        assert task.tower_heights[block] == len(tower)
        assert task.blocks_below[block] == len(tower) - 1 - tower.index(block)
        assert task.build_order[task.build_rank[block]] == block
    assert sorted(task.build_order) == list(range(task.num_blocks))
    # Stages put their sources in build order, each on a block placed before it.
    sources = [b for b in task.build_order if task.target_support[b] != TABLE]
    assert sources == [stage.source for stage in task.stages]
    assert all(task.build_rank[target] < task.build_rank[source] for source, target in task.stages)
    # A tower written earlier is built before every later one.
    for earlier, later in itertools.pairwise(task.tower_blocks):
        assert max(task.build_rank[b] for b in earlier) < min(task.build_rank[b] for b in later)


def test_layout_str_and_blocks() -> None:
    task = parse_task("  AB \t cDe\n")
    assert task.layout == "ab cde"
    assert str(task) == "ab cde"
    assert task.blocks == "abcde"
    assert task == parse_task("ab cde")


def test_canonical_ignores_tower_order() -> None:
    assert parse_task("ab cd").canonical == parse_task("cd ab").canonical == "ab cd"
    assert parse_task("ab cd") != parse_task("cd ab")
    assert parse_task("ab cd").canonical != parse_task("ba cd").canonical


def test_task_passthrough_and_hashable() -> None:
    task = parse_task("ab")
    assert parse_task(task) is task
    assert len({parse_task("ab c"), parse_task("AB  C")}) == 1


def test_task_constructor_validates() -> None:
    assert Task(("ab", "c")).num_stages == 1
    with pytest.raises(ValueError, match="repeated block 'a'"):
        Task(("ab", "a"))
    with pytest.raises(ValueError, match="empty tower"):
        Task(("ab", ""))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty layout"),
        ("  \t\n", "empty layout"),
        ("abcdefghijk", "more than 10 blocks"),
        ("abcde fghij a", "more than 10 blocks"),
        ("abk", "unknown character 'k'"),
        ("ab-c", "unknown character '-'"),
        ("a1", "unknown character '1'"),
        ("aba", "repeated block 'a'"),
        ("ab cb", "repeated block 'b'"),
        ("a", "fewer than 2 blocks"),
        ("b", "fewer than 2 blocks"),
        ("ab ce", "missing 'd'"),
        ("bc", "missing 'a'"),
        ("a b", "no stage"),
        ("c b a", "no stage"),
    ],
)
def test_parse_errors_name_problem_and_input(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as error:
        parse_task(text)
    assert repr(text) in str(error.value)


def test_parse_rejects_non_string() -> None:
    with pytest.raises(TypeError):
        parse_task(["ab"])  # type: ignore[arg-type]


# --- task classes: tasks up to relabelling of the blocks (paper appendix B.2) -----------------
def relabel(layout: str, letters: tuple[str, ...]) -> str:
    """``layout`` with block ``a`` renamed ``letters[0]``, ``b`` renamed ``letters[1]``, ..."""
    return layout.translate(str.maketrans(BLOCK_LETTERS[: len(letters)], "".join(letters)))


@pytest.mark.parametrize("layout", ["ab cd e", "ecadb", "abc de f", "ab c d", "bca"])
def test_the_class_is_the_same_under_every_relabelling(layout: str) -> None:
    task = parse_task(layout)
    relabelled = {relabel(layout, letters)
                  for letters in itertools.permutations(BLOCK_LETTERS[: task.num_blocks])}
    assert len(relabelled) == math.factorial(task.num_blocks)
    assert {parse_task(other).task_class for other in relabelled} == {task.task_class}


def test_the_class_is_tower_heights_in_build_order_and_single_blocks() -> None:
    assert parse_task("ab cd e").task_class == TaskClass((2, 2), 1)
    assert parse_task("ec da b").task_class == parse_task("ab cd e").task_class
    assert parse_task("ecadb").task_class == parse_task("dbeac").task_class == TaskClass((5,), 0)
    # Single blocks take no stage: where they are written does not matter.
    assert parse_task("c ab d").task_class == parse_task("ab c d").task_class
    # Another build order is another class: 3 then 2 blocks, or 2 then 3.
    assert parse_task("abc de").task_class != parse_task("de abc").task_class
    # Same final arrangement up to tower order, but not the same stages: still one class when
    # the towers have the same height.
    assert parse_task("ab cd").task_class == parse_task("cd ab").task_class
    assert str(TaskClass((2, 2), 1)) == "2-2+1" and str(TaskClass((5,), 0)) == "5"


def test_class_counts_per_stage_count_match_the_paper_reference() -> None:
    counts = Counter(c.num_stages for c in task_classes())
    assert dict(sorted(counts.items())) == {1: 9, 2: 15, 3: 24, 4: 36, 5: 48, 6: 49, 7: 30,
                                            8: 9, 9: 1}
    assert len(set(task_classes())) == 221
    for task_class in task_classes():
        representative = task_class.representative()
        assert representative.task_class == task_class
        assert representative.num_stages == task_class.num_stages
        assert parse_task_class(str(task_class)) == task_class


@pytest.mark.parametrize("text", ["", "1", "2-x", "3+-1", "9-2", "+2", "2--3"])
def test_bad_class_strings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid task class"):
        parse_task_class(text)
