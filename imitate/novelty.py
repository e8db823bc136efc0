"""What a policy has seen: the task classes it trained on, and the guard against training on
evaluation data (paper appendix B.2).

A task is *unseen* by a checkpoint only when its class (``envs.TaskClass``: the task up to
relabelling of its blocks) is not among the classes of the checkpoint's training tasks. The policy
is exactly equivariant to block slots, so a relabelled training task (``"ecadb"`` for a policy
trained on ``"dbeac"``) is a *seen* task, whatever split of the suite it belongs to.

The training tasks are the layouts of the training dataset, recorded in every checkpoint
(``training["dataset_tasks"]``); DAgger rolls out on those same tasks. A run that started from
another checkpoint's weights (``imitate train --init-from``) records that checkpoint's training
record under ``training["init_from"]["training"]``, and its tasks count as trained on too. A
checkpoint without the record (hand-made ones), or whose starting point lacks it, gives
``unknown``: no task is called unseen without evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from envs.suite import SUITE_VERSION, SUITE_VERSIONS, Suite, load_suite
from envs.tasks import TaskClass, parse_task
from imitate.data.seeds import EVALUATION_STREAMS

SEEN = "seen"
UNSEEN = "unseen"
UNKNOWN = "unknown"
#: Labels in report order.
NOVELTIES = (SEEN, UNSEEN, UNKNOWN)
#: Dataset ``params.stream`` values (stream names, lower case) that evaluation draws from.
EVALUATION_STREAM_NAMES = frozenset(stream.name.lower() for stream in EVALUATION_STREAMS)


def training_tasks(training: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The layouts a checkpoint was trained on (its ``training`` record), those of the checkpoint
    it started from (``init_from``, recursively) first, each once; None if any is unrecorded."""
    tasks = training.get("dataset_tasks") if isinstance(training, Mapping) else None
    if not isinstance(tasks, list) or not all(isinstance(x, str) for x in tasks):
        return None
    start = training.get("init_from")
    if start is None:
        return tuple(tasks)
    earlier = training_tasks(start.get("training", {})) if isinstance(start, Mapping) else None
    if earlier is None:
        return None
    return tuple(dict.fromkeys((*earlier, *tasks)))


def trained_classes(training: Mapping[str, Any]) -> frozenset[TaskClass] | None:
    """The classes of a checkpoint's training tasks, or None when the record lacks them."""
    tasks = training_tasks(training)
    if tasks is None:
        return None
    return frozenset(parse_task(layout).task_class for layout in tasks)


def novelty(layout: str, classes: frozenset[TaskClass] | None) -> str:
    """``unseen`` when ``layout``'s class is not in ``classes``, ``seen`` when it is, and
    ``unknown`` when the training classes are not known (``classes`` is None)."""
    if classes is None:
        return UNKNOWN
    return SEEN if parse_task(layout).task_class in classes else UNSEEN


def seen_as(layout: str, tasks: Iterable[str]) -> list[str]:
    """The layouts among ``tasks`` in ``layout``'s class (the training tasks it relabels)."""
    wanted = parse_task(layout).task_class
    return [other for other in tasks if parse_task(other).task_class == wanted]


def guard_suite(suite_version: Any) -> Suite:
    """The suite a dataset recorded with ``suite_version`` trains against (the current one for
    datasets that record none or an unknown one, such as DAgger aggregates)."""
    return load_suite(suite_version if suite_version in SUITE_VERSIONS else SUITE_VERSION)


def tasks_in_test_classes(layouts: Iterable[str], suite: Suite) -> list[str]:
    """One line per layout in a test class of ``suite``: ``'abc' (test task)`` or ``'bca'
    (relabels test task 'abc')``."""
    test = {task.task_class: task.layout for task in suite.test}
    found = []
    for layout in layouts:
        match = test.get(parse_task(layout).task_class)
        if match is None:
            continue
        found.append(f"{layout!r} (test task)" if match == layout
                     else f"{layout!r} (relabels test task {match!r})")
    return found


def evaluation_data_problems(manifest: Mapping[str, Any], layouts: Iterable[str]) -> list[str]:
    """Why a dataset is evaluation data (empty when it is not): recorded from an evaluation seed
    stream, or holding tasks of a test class of the suite it records (``guard_suite``)."""
    problems = []
    params = manifest.get("params") if isinstance(manifest.get("params"), Mapping) else {}
    stream = params.get("stream") if isinstance(params, Mapping) else None
    if stream in EVALUATION_STREAM_NAMES:
        problems.append(f"its demos come from the evaluation seed stream {stream!r} (the demos "
                        "'imitate eval' conditions on)")
    suite = guard_suite(manifest.get("suite_version"))
    tasks = tasks_in_test_classes(layouts, suite)
    if tasks:
        more = f" and {len(tasks) - 3} more" if len(tasks) > 3 else ""
        problems.append(f"it holds tasks of test classes of suite v{suite.version}: "
                        f"{', '.join(tasks[:3])}{more}")
    return problems
