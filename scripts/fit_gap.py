"""Does a policy fit its training demos better than the demos training held out? Its loss and
accuracy on pairs from each, side by side.

    python scripts/fit_gap.py runs/ref2-final-dagger/policy.pt --batches 40

Training holds out every ``holdout_every``-th demo of each task (``imitate train
--holdout-every``, recorded in the checkpoint) and never draws (observation, label) pairs from
them. This script draws ``--batches`` batches of the run's size (tasks per batch x pairs per
task) from the training demos and as many from the held-out demos, each conditioned on a
training demo of its task, and scores them as training's validation does (eval mode, temporal
dropout drawn from ``--seed``; DAgger's rollouts take no part). It prints the mean loss and the
share of rows with all four action heads right for each, with standard errors over batches, and
the gap. A gap near zero says the network has not fit its own demos better than unseen ones of
the same tasks: more demos per task would not lower its loss; more steps or more capacity would.

The dataset is ``--demos``, by default the one the checkpoint recorded. It must be the dataset
the run trained on, as it was: one with other tasks is refused (one line, exit 2), as are a
checkpoint whose run held no demo out and a file that is not a checkpoint or a dataset.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from imitate.checkpoint import Checkpoint, load_checkpoint  # noqa: E402
from imitate.data import DemoDataset, PairSampler, holdout_split  # noqa: E402
from imitate.training import validate  # noqa: E402


@dataclass(frozen=True)
class Figure:
    """A mean over batches and its standard error (0 for a single batch)."""

    mean: float
    stderr: float

    @classmethod
    def of(cls, values: list[float]) -> Figure:
        spread = float(np.std(values, ddof=1)) / math.sqrt(len(values)) if len(values) > 1 \
            else 0.0
        return cls(float(np.mean(values)), spread)

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.stderr:.3f}"


@dataclass(frozen=True)
class Scores:
    """One set of pairs (training or held-out demos), scored over ``batches`` batches."""

    batches: int
    loss: Figure
    accuracy: Figure  # share of rows with all four action heads right


def dataset_for(checkpoint: Checkpoint, demos: Path | None) -> DemoDataset:
    """The dataset the checkpoint trained on (``demos``, or the one it recorded); raises
    ValueError when its tasks are not the run's."""
    root = demos if demos is not None else Path(checkpoint.training["dataset"])
    dataset = DemoDataset(root)  # DatasetError (a ValueError) when it is not a dataset
    trained = checkpoint.training.get("dataset_tasks")
    if trained is not None and sorted(dataset.tasks) != sorted(trained):
        raise ValueError(f"{root} holds other tasks than the run trained on "
                         f"({len(dataset.tasks)} against {len(trained)}): pass --demos with "
                         f"its own dataset")
    return dataset


def held_out_split(checkpoint: Checkpoint, dataset: DemoDataset
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Training's own split of ``dataset`` (per task, demo positions); raises ValueError when
    it held nothing out."""
    every = int(checkpoint.training["config"]["holdout_every"])
    train, held_out = holdout_split(dataset, every)
    if not any(len(positions) for positions in held_out.values()):
        raise ValueError(f"the run held no demo out (--holdout-every {every}, at most "
                         f"{max(dataset.num_demos(t) for t in dataset.tasks)} demos per task): "
                         f"there is nothing unseen to compare with")
    return train, held_out


def score(checkpoint: Checkpoint, dataset: DemoDataset, conditioning: dict[str, np.ndarray],
          pairs: dict[str, np.ndarray], batches: int, seed: int) -> Scores:
    """Loss and accuracy of ``batches`` batches of pairs from the positions ``pairs``, each
    conditioned on a demo from ``conditioning`` (per task, demo positions)."""
    config = checkpoint.training["config"]
    sampler = PairSampler(dataset, tasks_per_batch=config["tasks_per_batch"],
                          pairs_per_task=config["pairs_per_task"],
                          rng=np.random.default_rng([seed, 0]),
                          condition_positions=conditioning, pair_positions=pairs)
    generator = torch.Generator().manual_seed(seed)
    losses, accuracies = [], []
    for _ in range(batches):
        figures = validate(checkpoint.policy, sampler, config["conditioning"],
                           torch.device("cpu"), generator)
        losses.append(figures["val_loss"])
        accuracies.append(figures["val_acc_all"])
    checkpoint.policy.eval()  # validate leaves the policy in train mode
    return Scores(batches, Figure.of(losses), Figure.of(accuracies))


def report(checkpoint_path: Path, checkpoint: Checkpoint, dataset: DemoDataset,
           held_out: dict[str, np.ndarray], training: Scores, unseen: Scores) -> str:
    """The printed table."""
    config = checkpoint.training["config"]
    per_task = sorted({(dataset.num_demos(t) - len(held_out[t]), len(held_out[t]))
                       for t in dataset.tasks})
    counts = ", ".join(f"{a} training and {b} held-out" for a, b in per_task)
    gap = Figure(unseen.loss.mean - training.loss.mean,
                 math.hypot(unseen.loss.stderr, training.loss.stderr))
    lines = [f"checkpoint {checkpoint_path}: step {checkpoint.step}, "
             f"--conditioning {config['conditioning']}",
             f"dataset {dataset.root}: {len(dataset.tasks)} tasks, {counts} demos per task "
             f"(1 in {config['holdout_every']} held out)",
             f"batches of {config['tasks_per_batch']} tasks x {config['pairs_per_task']} pairs",
             "",
             f"{'pairs from':<18}{'batches':>8}  {'loss':<16}{'all four heads right':<16}"]
    for name, scores in (("training demos", training), ("held-out demos", unseen)):
        lines.append(f"{name:<18}{scores.batches:>8}  {scores.loss!s:<16}"
                     f"{scores.accuracy}")
    lines += ["", f"gap (held-out minus training loss): {gap}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="an imitate checkpoint (policy.pt)")
    parser.add_argument("--demos", type=Path, default=None,
                        help="the dataset it trained on (default: the one it recorded)")
    parser.add_argument("--batches", type=int, default=40,
                        help="batches drawn from each set of demos (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="draws pairs and temporal dropout")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    if args.batches < 1:
        parser.exit(2, f"{parser.prog}: error: --batches must be at least 1, got "
                       f"{args.batches}\n")
    torch.set_num_threads(args.threads)
    try:
        checkpoint = load_checkpoint(args.checkpoint)
        dataset = dataset_for(checkpoint, args.demos)
        train, held_out = held_out_split(checkpoint, dataset)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    training = score(checkpoint, dataset, train, train, args.batches, args.seed)
    unseen = score(checkpoint, dataset, train, held_out, args.batches, args.seed)
    print(report(args.checkpoint, checkpoint, dataset, held_out, training, unseen))


if __name__ == "__main__":
    main()
