"""The committed task suites: v2's composition (one task per class, no test class trained on),
v1 still loadable, reproducibility, and the checks that refuse broken data."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources

import pytest

from envs.suite import (
    SUITE_SEED,
    SUITE_VERSION,
    TEST_STAGE_COUNTS,
    TRAIN_STAGE_COUNTS,
    Suite,
    generate_suite,
    load_suite,
    parse_suite,
    suite_file,
    training_stage_counts,
)
from envs.tasks import parse_task, task_classes


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite()


def committed_data(version: int = SUITE_VERSION) -> dict:
    path = resources.files("envs").joinpath("data").joinpath(suite_file(version))
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_current_suite_is_v2_with_the_papers_sizes(suite: Suite) -> None:
    assert suite.version == SUITE_VERSION == 2
    assert len(suite.train) == 140
    assert len(suite.test) == 43
    assert len(suite.split("all")) == 183


def test_stage_counts(suite: Suite) -> None:
    train = Counter(task.num_stages for task in suite.train)
    test = Counter(task.num_stages for task in suite.test)
    assert test == {2: 7, 4: 7, 5: 7, 6: 7, 7: 7, 8: 8}
    assert train == {1: 9, 2: 8, 3: 24, 4: 25, 5: 25, 6: 26, 7: 23} == TRAIN_STAGE_COUNTS


def test_training_counts_are_water_filled_over_the_classes_left() -> None:
    """Each stage count takes min(classes left, 25); the one task missing goes to the stage
    count with the most classes left (6 stages: 49 - 7 = 42)."""
    left = {s: len(task_classes(s)) - TEST_STAGE_COUNTS.get(s, 0) for s in range(1, 8)}
    assert left == {1: 9, 2: 8, 3: 24, 4: 29, 5: 41, 6: 42, 7: 23}
    counts = training_stage_counts()
    assert sum(counts.values()) == 140
    assert {s: min(n, 25) for s, n in left.items()} == {**counts, 6: 25}


def test_every_task_is_alone_in_its_class_and_no_test_class_is_trained_on(suite: Suite) -> None:
    classes = [task.task_class for task in suite.split("all")]
    assert len(set(classes)) == len(classes) == 183
    assert not suite.classes("train") & suite.classes("test")
    # Relabelling a test task never gives a training task, whatever the letters.
    for task in suite.test:
        assert suite.same_class(task, "train") == ()
        assert suite.same_class(task.task_class.representative(), "test") == (task,)


def test_block_counts_are_spread_within_each_stage_count(suite: Suite) -> None:
    tasks = suite.split("all")
    assert all(2 <= task.num_blocks <= 10 for task in tasks)
    for name in ("train", "test"):
        for stages in {task.num_stages for task in suite.split(name)}:
            chosen = Counter(t.num_blocks for t in suite.split(name) if t.num_stages == stages)
            # Test classes are drawn first; training classes from those left.
            taken = suite.classes("test") if name == "train" else frozenset()
            available = Counter(c.num_blocks for c in task_classes(stages) if c not in taken)
            # Round-robin over block counts: no block count gets two more than another, unless
            # the other has run out of classes.
            for blocks, count in chosen.items():
                for other in available:
                    if chosen.get(other, 0) < count - 1:
                        assert chosen.get(other, 0) == available[other], (name, stages, chosen)
                assert count <= available[blocks]


def test_committed_files_match_the_generator() -> None:
    for version in (1, 2):
        data = committed_data(version)
        assert data["seed"] == SUITE_SEED
        assert data["generator"] == "scripts/make_suite.py"
        assert data == generate_suite(SUITE_SEED, version)


def test_generator_is_deterministic_and_seeded() -> None:
    assert generate_suite(1) == generate_suite(1)
    assert generate_suite(1)["train"] != generate_suite(2)["train"]
    assert parse_suite(generate_suite(2)).version == SUITE_VERSION
    with pytest.raises(ValueError, match="unknown task suite version 7"):
        generate_suite(1, version=7)


def test_suite_v1_stays_loadable_and_shows_why_it_was_replaced() -> None:
    v1 = load_suite(1)
    assert v1.version == 1 and len(v1.train) == 140 and len(v1.test) == 43
    assert v1.test[0].layout == committed_data(1)["test"][0]
    # 22 test tasks, of 19 classes, share a class with a training task ...
    shared = [task for task in v1.test if v1.same_class(task, "train")]
    assert len(shared) == 22 and len({task.task_class for task in shared}) == 19
    # ... and the README's 4-stage "unseen" tasks relabel training tasks.
    assert [t.layout for t in v1.same_class("ecadb", "train")] == ["dbeac", "aebdc"]
    with pytest.raises(ValueError, match="unknown task suite version 3; this imitate has v1, v2"):
        load_suite(3)


def test_split_names(suite: Suite) -> None:
    assert suite.split("train") == suite.train
    assert suite.split("test") == suite.test
    with pytest.raises(ValueError, match="unknown split 'bogus'; choose one of train, test, all"):
        suite.split("bogus")


def test_find(suite: Suite) -> None:
    task = next(t for t in suite.test if t.num_towers > 1)
    reordered = " ".join(reversed(task.towers))
    assert suite.find(task.layout) == task
    assert suite.find(reordered) == task
    assert suite.split_of(reordered) == "test"
    assert suite.split_of(suite.train[0]) == "train"
    assert suite.find("abcdefghij") is None  # 9 stages: never in the suite
    assert suite.split_of("abcdefghij") is None


def test_load_is_cached() -> None:
    assert load_suite() is load_suite()
    assert load_suite(1) is load_suite(1)


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (lambda d: d.update(version=9), "version"),
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


def test_a_relabelled_training_task_in_the_test_split_is_rejected() -> None:
    data = committed_data()
    train_task = next(parse_task(x) for x in data["train"] if parse_task(x).num_stages == 2)
    index = next(i for i, x in enumerate(data["test"]) if parse_task(x).num_stages == 2)
    relabelled = train_task.layout.translate(str.maketrans("abcd", "badc"))
    assert relabelled != train_task.layout
    data["test"][index] = relabelled
    with pytest.raises(ValueError, match=r"is training task .* up to relabelling"):
        parse_suite(data)


def test_two_training_tasks_of_one_class_are_rejected() -> None:
    data = committed_data()
    index = next(i for i, x in enumerate(data["train"]) if x == "ba")
    data["train"][index + 1] = "bc a"  # the class of 'bc a' appears twice: 2+1
    data["train"][index + 2] = "ab c"
    with pytest.raises(ValueError, match="one task up to relabelling"):
        parse_suite(data)


def test_make_suite_check_passes_and_fails(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_suite.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "suite_v1.json: up to date" in done.stdout and "suite_v2.json: up to date" in done.stdout
    broken = committed_data()
    broken["test"][0], broken["train"][0] = broken["train"][0], broken["test"][0]
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(broken))
    done = subprocess.run([sys.executable, str(script), "--check", "--version", "2", "--out",
                           str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "differs from generate_suite" in done.stderr
