"""The committed task suite: composition, disjointness, reproducibility."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources

import pytest

from envs.suite import (
    SUITE_SEED,
    SUITE_VERSION,
    Suite,
    generate_suite,
    load_suite,
    parse_suite,
)
from envs.tasks import parse_task


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite()


def committed_data() -> dict:
    path = resources.files("envs").joinpath("data").joinpath(f"suite_v{SUITE_VERSION}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def test_counts(suite: Suite) -> None:
    assert suite.version == SUITE_VERSION
    assert len(suite.train) == 140
    assert len(suite.test) == 43
    assert len(suite.split("all")) == 183


def test_stage_distribution(suite: Suite) -> None:
    train = Counter(task.num_stages for task in suite.train)
    test = Counter(task.num_stages for task in suite.test)
    assert set(train) == {1, 2, 3, 4, 5, 6, 7}
    assert set(test) == {2, 4, 5, 6, 7, 8}
    assert all(count == 20 for count in train.values())
    assert test == {2: 7, 4: 7, 5: 7, 6: 7, 7: 7, 8: 8}


def test_block_counts_and_towers(suite: Suite) -> None:
    tasks = suite.split("all")
    assert all(2 <= task.num_blocks <= 10 for task in tasks)
    assert all(max(len(tower) for tower in task.towers) <= 9 for task in tasks)
    # Block counts are spread, not all minimal or maximal.
    assert len({task.num_blocks for task in suite.train}) >= 7


def test_disjoint_and_no_duplicates_up_to_tower_order(suite: Suite) -> None:
    canonical = [task.canonical for task in suite.split("all")]
    assert len(set(canonical)) == len(canonical)
    assert not {t.canonical for t in suite.train} & {t.canonical for t in suite.test}


def test_committed_file_matches_generator() -> None:
    data = committed_data()
    assert data["seed"] == SUITE_SEED
    assert data["generator"] == "scripts/make_suite.py"
    assert data == generate_suite(SUITE_SEED)


def test_generator_is_deterministic_and_seeded() -> None:
    assert generate_suite(1) == generate_suite(1)
    assert generate_suite(1)["train"] != generate_suite(2)["train"]
    assert parse_suite(generate_suite(2)).version == SUITE_VERSION


def test_split_names(suite: Suite) -> None:
    assert suite.split("train") == suite.train
    assert suite.split("test") == suite.test
    with pytest.raises(ValueError, match="unknown split 'bogus'; choose one of train, test, all"):
        suite.split("bogus")


def test_find(suite: Suite) -> None:
    task = suite.test[0]
    reordered = " ".join(reversed(task.towers))
    assert suite.find(task.layout) == task
    assert suite.find(reordered) == task
    assert suite.split_of(reordered) == "test"
    assert suite.split_of(suite.train[0]) == "train"
    assert suite.find("abcdefghij") is None  # 9 stages: never in the suite
    assert suite.split_of("abcdefghij") is None


def test_load_is_cached() -> None:
    assert load_suite() is load_suite()


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(train="ab"), "list of layout strings"),
        (lambda d: d["test"].pop(), "test tasks per stage count"),
        (lambda d: d["train"].__setitem__(0, "abcd"), "train tasks per stage count"),
        (lambda d: d["train"].__setitem__(0, "zz"), "unknown character"),
        (lambda d: d["test"].__setitem__(0, d["test"][1]), "equal up to tower order"),
    ],
)
def test_parse_suite_rejects_broken_data(corrupt, problem: str) -> None:
    data = committed_data()
    corrupt(data)
    with pytest.raises(ValueError, match=problem):
        parse_suite(data)


def test_train_test_overlap_is_rejected() -> None:
    data = committed_data()
    # Replace a 2-stage test task by a training 2-stage task written in another tower order.
    train_task = next(parse_task(x) for x in data["train"] if parse_task(x).num_stages == 2)
    index = next(i for i, x in enumerate(data["test"]) if parse_task(x).num_stages == 2)
    data["test"][index] = " ".join(reversed(train_task.towers))
    with pytest.raises(ValueError, match="equal up to tower order"):
        parse_suite(data)
