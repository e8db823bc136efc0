"""What the policy was doing when its episodes failed: replays failed episodes of an ``imitate
eval`` report and reads the world at each one's last control step.

    python scripts/failure_anatomy.py runs/ref2-final-dagger/eval-test [--per-stages 5] \\
        [--checkpoint PATH] [--json anatomy.json]

The report folder's episode log (``episodes.jsonl``) says which episodes failed; the first
``--per-stages`` failures of each stage count (report order) run again exactly as ``imitate
eval`` ran them (same conditioning demo, start and greedy ensemble; the expert does not run),
and the script checks that each replay ends as the log says. Each last state falls in one class:

- ``premature pick``: the hand holds a block whose destination is not built yet (the block it
  goes on is not yet in its final place), so no valid placement exists;
- ``holding, destination ready``: the hand holds a block that could go on its target now;
- ``holding a base``: the hand holds the bottom block of a tower, which never moves;
- ``empty hand``: nothing in the hand.

It also counts the stages satisfied in any order (blocks resting on their targets), beside the
env's ``stage`` (the longest complete prefix of the build order), since a policy conditioned on
the final state alone may build the towers in another order. The checkpoint defaults to the one
the report's ``config.json`` names (give ``--checkpoint`` while the evaluation still runs); one
whose bytes are not the ones the log evaluated is refused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import gymnasium  # noqa: E402

import envs  # noqa: E402
from envs.expert import ScriptedExpert  # noqa: E402
from envs.expert.world import observe  # noqa: E402
from envs.predicates import layout_status  # noqa: E402
from envs.tasks import TABLE, Task, parse_task  # noqa: E402
from imitate.checkpoint import (  # noqa: E402
    load_checkpoint,
    read_checkpoint_bytes,
    resolve_checkpoint,
)
from imitate.episode_log import read_header, read_log  # noqa: E402
from imitate.evaluation import (  # noqa: E402
    LOG_NAME,
    EpisodeJob,
    EpisodeResult,
    run_episode,
    use_one_inference_thread,
)

CLASSES = ("premature pick", "holding, destination ready", "holding a base", "empty hand")


def in_final_place(task: Task, support: list[int], block: int) -> bool:
    """Whether ``block`` and every block under it in its target tower rest where the task puts
    them (a tower's bottom block: on the table)."""
    targets = task.target_support
    while True:
        if support[block] != targets[block]:
            return False
        if targets[block] == TABLE:
            return True
        block = targets[block]


def classify(task: Task, support: list[int], held: int) -> str:
    """The class (one of ``CLASSES``) of a last state where the hand holds ``held`` (-1: none)."""
    if held < 0:
        return "empty hand"
    target = task.target_support[held]
    if target == TABLE:
        return "holding a base"
    return ("holding, destination ready" if in_final_place(task, support, target)
            else "premature pick")


def last_state(env: Any, task: Task) -> dict[str, Any]:
    """The class, held block and stages satisfied in any order of the env's current state."""
    base = env.unwrapped
    state = base.block_state
    support = layout_status(task, state.positions, state.free).support.tolist()
    held = observe(env).held
    satisfied = sum(support[stage.source] == stage.target for stage in task.stages)
    return {"class": classify(task, support, held), "held": held,
            "satisfied_any_order": satisfied}


def failed_episodes(log: Path, per_stages: int) -> tuple[dict[str, Any], list[EpisodeResult]]:
    """The log's header and its first ``per_stages`` failed episodes of each stage count (a
    log still being written is read up to its last complete line)."""
    header = read_header(log)
    taken: Counter[int] = Counter()
    chosen = []
    for result in read_log(log, header, EpisodeResult):
        if not result.success and taken[result.num_stages] < per_stages:
            taken[result.num_stages] += 1
            chosen.append(result)
    return header, chosen


def replay(checkpoint: Path, data: bytes, header: dict[str, Any], logged: list[EpisodeResult]
           ) -> list[dict[str, Any]]:
    """Run each failed episode again (the policy from ``data``, the bytes of ``checkpoint``)
    and read its last state."""
    use_one_inference_thread()  # as imitate eval
    policy = load_checkpoint(checkpoint, data=data).policy
    env = gymnasium.make(envs.ENV_ID)
    expert = ScriptedExpert()
    found = []
    try:
        for was in logged:
            job = EpisodeJob(was.split, was.task, was.episode, header["seed"],
                             header["ensemble"], False, header["demo_noise"])
            result = run_episode(policy, env, expert, job)
            same = (result.stage, result.failure, result.steps) == (
                was.stage, was.failure, was.steps)
            state = last_state(env, parse_task(was.task))
            found.append({"task": was.task, "episode": was.episode,
                          "num_stages": was.num_stages, "failure": was.failure,
                          "stage": result.stage, "replayed_as_logged": same, **state})
            print(f"{was.task!r} episode {was.episode}: {was.failure}, stage "
                  f"{result.stage}/{was.num_stages}, {state['satisfied_any_order']} "
                  f"satisfied in any order, {state['class']}"
                  + ("" if same else " (the replay ended otherwise than the log)"), flush=True)
    finally:
        env.close()
    return found


def summary_table(found: list[dict[str, Any]]) -> str:
    """Markdown: per stage count, failures replayed and each class's count."""
    lines = ["| stages | failures replayed | " + " | ".join(CLASSES) + " | mean stages "
             "(build order / any order) |", "|---:|---:|" + "---:|" * len(CLASSES) + "---|"]
    for stages in sorted({f["num_stages"] for f in found}):
        group = [f for f in found if f["num_stages"] == stages]
        counts = Counter(f["class"] for f in group)
        ordered = sum(f["stage"] for f in group) / len(group)
        anyorder = sum(f["satisfied_any_order"] for f in group) / len(group)
        lines.append(f"| {stages} | {len(group)} | "
                     + " | ".join(str(counts[name]) for name in CLASSES)
                     + f" | {ordered:.1f} / {anyorder:.1f} |")
    return "\n".join(lines)


def evaluated_checkpoint(report: Path, given: Path | None, header: dict[str, Any]
                         ) -> tuple[Path, bytes]:
    """The checkpoint that wrote the log, and its bytes: ``given``, or the one the report's
    ``config.json`` names (an evaluation writes it when it ends). ``ValueError`` when there is
    none, or when its bytes are not the ones the log's header records (``checkpoint_sha256``,
    as ``imitate.evaluation.log_header`` hashes them): other weights would not replay the
    logged episodes."""
    if given is None:
        config = report / "config.json"
        if not config.is_file():
            raise ValueError(f"{config} is missing (an evaluation still running writes it at "
                             "its end); give --checkpoint")
        given = Path(json.loads(config.read_text())["checkpoint"])
    data = read_checkpoint_bytes(given)  # CheckpointError (a ValueError) when it is missing
    path = resolve_checkpoint(given)
    if hashlib.sha256(data).hexdigest() != header["checkpoint_sha256"]:
        raise ValueError(f"{path} is not the checkpoint that {report / LOG_NAME} evaluated "
                         "(its sha256 differs from the log's checkpoint_sha256)")
    return path, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="an 'imitate eval' output folder")
    parser.add_argument("--per-stages", type=int, default=5,
                        help="failed episodes replayed per stage count (default: 5)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="default: the checkpoint the report's config.json names")
    parser.add_argument("--json", type=Path, default=None, help="write every replay here")
    args = parser.parse_args()
    log = args.report / LOG_NAME
    if not log.is_file():
        parser.exit(2, f"{parser.prog}: error: {log} is missing (is {args.report} an imitate "
                       "eval folder?)\n")
    if args.per_stages < 1:
        parser.exit(2, f"{parser.prog}: error: --per-stages must be at least 1\n")
    try:
        header, rows = failed_episodes(log, args.per_stages)
        checkpoint, data = evaluated_checkpoint(args.report, args.checkpoint, header)
    except ValueError as error:  # not a log, or no checkpoint that can replay it
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    found = replay(checkpoint, data, header, rows)
    if args.json is not None:
        args.json.write_text(json.dumps(found, indent=1) + "\n")
    print(summary_table(found) if found else "no failed episode in the log")


if __name__ == "__main__":
    main()
