"""Data-parallel training under ``torchrun``: ranks, the process group, and each rank's share.

``torchrun --nproc_per_node N -m imitate.cli train ...`` starts N processes with the environment
variables ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; ``torchrun_ranks`` reads them (one plain
process is rank 0 of 1). Every rank draws the WHOLE batch of ``tasks_per_batch`` tasks from the
same seeded streams, exactly as one process would (the sampler's numpy RNG, then temporal dropout
from the torch generator), and keeps a contiguous block of its tasks (``share``): rank ``r`` of
``N`` keeps tasks ``B * r // N`` up to ``B * (r + 1) // N``. Each rank's loss is scaled by its
share of the batch's observation rows times ``N`` (``loss_weight``), so that DDP's gradient
average is the one-process gradient of the mean over all rows; reported figures are all-reduced
the same way (``mean_over_ranks``). The data-dependent initialisation runs on the whole batch on
every rank, so every rank starts from the same weights.

``TensorBatch`` and ``to_tensors`` (the batch on the device) live here because a share is a slice
of one.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from imitate import actions
from imitate.data import Batch
from imitate.metrics import accuracies
from imitate.model import DemoBatch, OneShotPolicy

logger = logging.getLogger(__name__)

#: The environment variables ``torchrun`` sets in every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
#: How long a rank waits for the others at a collective (rank 0's checks, a step's all-reduce).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)

Value = TypeVar("Value")


# --- batches to tensors ----------------------------------------------------------------------
@dataclass
class TensorBatch:
    """A ``Batch`` on the device, trimmed to the largest task's block count ``K``.

    demo: B conditioning demos (``DemoBatch``, frames chosen by the conditioning mode); blocks
    (B * P, K, 3), gripper (B * P, 2), block_mask (B * P, K) observations; labels (B * P, 4) bin
    indices (``actions.to_bins``). Trimming padded block slots is exact: padding has no effect.
    """

    demo: DemoBatch
    blocks: torch.Tensor
    gripper: torch.Tensor
    block_mask: torch.Tensor
    labels: torch.Tensor
    pairs_per_demo: int

    def tasks(self, chosen: slice) -> TensorBatch:
        """The batch of the tasks (demos) ``chosen`` and their observation rows, same padding."""
        p = self.pairs_per_demo
        rows = slice(chosen.start * p, chosen.stop * p)
        demo = self.demo
        return TensorBatch(
            demo=DemoBatch(demo.blocks[chosen], demo.gripper[chosen], demo.block_mask[chosen],
                           demo.frame_mask[chosen],
                           None if demo.frames is None else demo.frames[chosen]),
            blocks=self.blocks[rows], gripper=self.gripper[rows],
            block_mask=self.block_mask[rows], labels=self.labels[rows], pairs_per_demo=p)


def to_tensors(batch: Batch, conditioning: str, device: torch.device) -> TensorBatch:
    """Convert a numpy ``Batch`` for the policy (see ``TensorBatch`` for shapes)."""
    k = max(int(batch.block_mask.sum(1).max()), 1)  # block slots are the first n letters
    b, p = batch.obs_blocks.shape[:2]
    demo_blocks, demo_gripper, frame_mask = batch.conditioning(conditioning)

    def put(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    block_mask = batch.block_mask[:, :k]  # (B, K)
    demo = DemoBatch(put(demo_blocks[:, :, :k]), put(demo_gripper), put(block_mask),
                     put(frame_mask))
    return TensorBatch(
        demo=demo,
        blocks=put(batch.obs_blocks[:, :, :k].reshape(b * p, k, 3)),  # (B*P, K, 3)
        gripper=put(batch.obs_gripper.reshape(b * p, 2)),  # (B*P, 2)
        block_mask=put(np.repeat(block_mask, p, axis=0)),  # (B*P, K)
        labels=put(actions.to_bins(batch.labels.reshape(b * p, 4))),  # (B*P, 4)
        pairs_per_demo=p,
    )


# --- ranks -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel processes.

    Attributes:
        rank: 0 .. world - 1; rank 0 alone writes files.
        world: how many processes train together (1: a plain run).
        local_rank: the rank on this machine (the CUDA device it uses).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files (rank 0)."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def share(self, tasks: int) -> slice:
        """This rank's contiguous block of a batch's ``tasks`` tasks."""
        return slice(tasks * self.rank // self.world, tasks * (self.rank + 1) // self.world)

    def loss_weight(self, rows: int, total_rows: int) -> float:
        """Factor on this rank's mean loss over ``rows`` rows so that the ranks' averaged
        gradient is that of the mean over all ``total_rows`` rows."""
        return rows * self.world / total_rows


#: One plain process.
SINGLE = Ranks()


def torchrun_ranks(environ: dict[str, str] | None = None) -> Ranks:
    """The ranks ``torchrun`` set in the environment; ``SINGLE`` when none is set.

    Raises ``ValueError`` when only some of ``TORCHRUN_VARIABLES`` are set or they are not
    consistent integers.
    """
    environ = dict(os.environ) if environ is None else environ
    present = [name for name in TORCHRUN_VARIABLES if name in environ]
    if not present:
        return SINGLE
    if len(present) < len(TORCHRUN_VARIABLES):
        missing = sorted(set(TORCHRUN_VARIABLES) - set(present))
        raise ValueError(f"{', '.join(present)} set but not {', '.join(missing)}: start "
                         "data-parallel training with torchrun, or unset them")
    try:
        rank, world, local = (int(environ[name]) for name in TORCHRUN_VARIABLES)
    except ValueError:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers, got "
                         f"{', '.join(environ[name] for name in TORCHRUN_VARIABLES)}") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"RANK {rank} of WORLD_SIZE {world} (LOCAL_RANK {local}) is not a "
                         "valid rank; start data-parallel training with torchrun")
    return Ranks(rank, world, local)


def check_batch_split(ranks: Ranks, tasks_per_batch: int) -> None:
    """Refuse a batch with fewer tasks than ranks (a rank would have nothing to learn from)."""
    if tasks_per_batch < ranks.world:
        raise ValueError(f"--tasks-per-batch {tasks_per_batch} is smaller than the {ranks.world} "
                         "torchrun processes; each process needs at least one task per batch")


def rank_device(ranks: Ranks, device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` on CUDA, else ``device``."""
    if ranks.parallel and device.type == "cuda":
        return torch.device("cuda", ranks.local_rank)
    return device


@contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """The process group of ``ranks`` (gloo on CPU, NCCL on CUDA) while inside; nothing for a
    plain run. The rendezvous address is torchrun's (``MASTER_ADDR``, ``MASTER_PORT``)."""
    if not ranks.parallel:
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world,
                            timeout=COLLECTIVE_TIMEOUT)
    logger.info("rank %d of %d joined the %s process group", ranks.rank, ranks.world, backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def from_main(ranks: Ranks, compute: Callable[[], Value]) -> Value:
    """``compute()`` on rank 0, its value (any picklable object) on every rank.

    A ``ValueError`` raised on rank 0 is raised on every rank with the same message, so all
    of them stop with the same one-line error instead of waiting for each other.
    """
    if not ranks.parallel:
        return compute()
    outcome: list[object] = [None]
    if ranks.main:
        try:
            outcome[0] = ("value", compute())
        except ValueError as error:
            outcome[0] = ("error", error)
    dist.broadcast_object_list(outcome, src=0)
    kind, value = outcome[0]  # type: ignore[misc]
    if kind == "error":
        if ranks.main:
            raise value
        raise ValueError(str(value))
    return value  # type: ignore[return-value]


def mean_over_ranks(ranks: Ranks, figures: dict[str, float], rows: int,
                    total_rows: int) -> dict[str, float]:
    """Means over this rank's ``rows`` rows -> means over all ``total_rows`` rows of the batch
    (each rank's weighted by its share, summed across ranks)."""
    if not ranks.parallel:
        return figures
    names = sorted(figures)
    weighted = torch.tensor([figures[name] * rows / total_rows for name in names],
                            dtype=torch.float64, device=_collective_device())  # (F,)
    dist.all_reduce(weighted)
    return dict(zip(names, weighted.tolist(), strict=True))


def any_rank(ranks: Ranks, flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (a signal one rank caught stops them all at the same
    step)."""
    if not ranks.parallel:
        return flag
    value = torch.tensor([int(flag)], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _collective_device() -> torch.device:
    """Where the process group's tensors live: the current CUDA device for NCCL, else CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def data_parallel(ranks: Ranks, policy: OneShotPolicy, device: torch.device) -> torch.nn.Module:
    """What runs the training forward pass: ``policy`` itself in a plain run, else its
    ``DistributedDataParallel`` wrapper (gradients averaged across ranks in the backward pass;
    rank 0's weights broadcast to all when it is made)."""
    if not ranks.parallel:
        return policy
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(policy, device_ids=ids)


# --- one rank's share of a batch --------------------------------------------------------------
def subsampled_share(policy: OneShotPolicy, batch: TensorBatch, generator: torch.Generator,
                     ranks: Ranks) -> TensorBatch:
    """This rank's tasks of ``batch``, their demos subsampled by temporal dropout drawn for the
    WHOLE batch from ``generator`` (as one process draws them), so the draws match any N."""
    demo = policy.subsample(batch.demo, generator)
    whole = TensorBatch(demo, batch.blocks, batch.gripper, batch.block_mask, batch.labels,
                        batch.pairs_per_demo)
    return whole.tasks(ranks.share(len(demo.block_mask))) if ranks.parallel else whole


def share_accuracies(policy: OneShotPolicy, logits: torch.Tensor, batch: TensorBatch,
                     ranks: Ranks) -> dict[str, float]:
    """``imitate.metrics.accuracies`` over all rows of ``batch`` from this rank's ``logits``
    (n, 3 * bins + 2) of its share."""
    labels = batch.tasks(ranks.share(len(batch.demo.block_mask))).labels if ranks.parallel \
        else batch.labels  # (n, 4)
    return mean_over_ranks(ranks, accuracies(policy, logits, labels), len(labels),
                           len(batch.labels))
