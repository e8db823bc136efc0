"""Behaviour-cloning training of the one-shot policy (paper section 3.3, appendix B.5).

Each optimisation step draws ``tasks_per_batch`` tasks with replacement; for each, one
conditioning demo and ``pairs_per_task`` (observation, clean expert label) pairs from ANOTHER demo
of the same task (``imitate.data.PairSampler``). The loss is the summed per-axis cross-entropy over
the discrete action set (``imitate.actions``), optimised with Adamax (paper: lr 1e-3).

A run folder holds:

| file | what |
|---|---|
| ``policy.pt`` | the latest checkpoint (``imitate.checkpoint``), with optimiser and RNG state |
| ``config.json`` | the run's ``TrainConfig`` (a resume must match it; ``--config`` reads it) |
| ``metrics.jsonl`` | one JSON object per logged step: loss, accuracies, samples/s, CPU s, DAgger |
| ``tensorboard/``, ``wandb/`` | the same rows, with ``--logger`` (``imitate.metrics``) |

Checkpoints are written atomically every ``checkpoint_every`` steps and at the end; ``resume``
continues from the last one bit for bit (same batches, same weights as an uninterrupted run).

This module holds one step (``train_step``) and the loop; ``imitate.train_config`` holds
``TrainConfig`` and the checks before a run writes anything, ``imitate.metrics`` the metrics log.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imitate import distributed, fast
from imitate.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from imitate.dagger import collect_round, completed_rounds, dagger_round_figures
from imitate.data import DatasetError, DemoDataset, PairSampler, holdout_split
from imitate.distributed import (
    SINGLE,
    Ranks,
    TensorBatch,
    mean_over_ranks,
    share_accuracies,
    subsampled_share,
    to_tensors,
)
from imitate.files import atomic_write_bytes, folder_lock, remove_temporaries, sha256_file
from imitate.metrics import MetricsLog, check_logger_packages, resumed_cpu_seconds
from imitate.model import OneShotPolicy, data_dependent_init
from imitate.novelty import evaluation_data_problems
from imitate.train_config import (
    CHECKPOINT_NAME,
    COMPILE_AUTO_MIN_STEPS,
    CONFIG_NAME,
    LOCK_NAME,
    SNAPSHOT_DIR,
    TrainConfig,
    check_not_evaluation_data,
    check_run_folder,
    open_training_dataset,
    resolve_device,
    resolve_init_from,
)

logger = logging.getLogger(__name__)


def initialise_policy(policy: OneShotPolicy, batch: TensorBatch,
                      generator: torch.Generator) -> None:
    """Data-dependent weight-norm initialisation on the first batch (paper, appendix B.1).

    One forward pass without gradients, on ``batch``'s demos subsampled by temporal dropout
    (drawn from ``generator``), sets each weight-normalised layer's gain and bias so that its
    outputs have zero mean and unit variance over the batch (``data_dependent_init``). Run it
    once, on the first batch of a new run, before the first ``train_step``.
    """
    with torch.no_grad(), data_dependent_init():
        policy(policy.subsample(batch.demo, generator), batch.blocks, batch.gripper,
               batch.block_mask, batch.pairs_per_demo)


def train_step(policy: OneShotPolicy, optimizer: torch.optim.Optimizer, batch: TensorBatch,
               generator: torch.Generator, *, ranks: Ranks = SINGLE,
               model: torch.nn.Module | None = None) -> tuple[float, torch.Tensor]:
    """One optimisation step on ``batch`` (B demos, N = B * P observation rows, ``TensorBatch``).

    Subsamples the demos' frames by temporal dropout (``full`` conditioning; ``generator``
    draws the frames of all B demos), runs the policy forward to logits (n, 3 * bins + 2) on
    this rank's share of the tasks (``Ranks.share``: all of them in a plain run), takes the loss
    (``OneShotPolicy.loss``: summed per-axis cross-entropy against ``batch.labels``, mean over
    rows), backpropagates it and steps ``optimizer``. ``model`` is what runs the forward pass
    (the ``DistributedDataParallel`` wrapper of ``policy`` under torchrun; default ``policy``).
    The policy must be in train mode.

    Returns the loss over all N rows (a float, the same on every rank) and this rank's logits
    (n, 3 * bins + 2), detached. Raises ``ValueError`` when the loss is not finite (before any
    weight changes).
    """
    share = subsampled_share(policy, batch, generator, ranks)
    logits = (model or policy)(share.demo, share.blocks, share.gripper, share.block_mask,
                               share.pairs_per_demo)  # (n, 3 * bins + 2)
    loss = policy.loss(logits, share.labels)
    reported = mean_over_ranks(ranks, {"loss": float(loss.detach())}, len(share.labels),
                               len(batch.labels))["loss"]
    if not np.isfinite(reported):
        raise ValueError(f"training loss became {reported}; lower --lr")
    weight = ranks.loss_weight(len(share.labels), len(batch.labels))
    optimizer.zero_grad(set_to_none=True)
    (loss if weight == 1.0 else loss * weight).backward()
    optimizer.step()
    return reported, logits.detach()


@torch.no_grad()
def validate(policy: OneShotPolicy, sampler: PairSampler, conditioning: str,
             device: torch.device, generator: torch.Generator,
             ranks: Ranks = SINGLE) -> dict[str, float]:
    """Loss and accuracies (keys ``val_loss``, ``val_acc_x`` ...) on one batch of the pairs
    ``sampler`` draws, held-out ones in training (eval mode, then back to train; temporal
    dropout drawn from ``generator``); under torchrun each rank scores its share and the
    figures are all-reduced."""
    batch = to_tensors(sampler.sample(), conditioning, device)
    policy.eval()
    try:
        share = subsampled_share(policy, batch, generator, ranks)
        logits = policy(share.demo, share.blocks, share.gripper, share.block_mask,
                        share.pairs_per_demo)
        result = mean_over_ranks(ranks, {"val_loss": float(policy.loss(logits, share.labels))},
                                 len(share.labels), len(batch.labels))
        result.update({f"val_{k}": v for k, v in
                       share_accuracies(policy, logits, batch, ranks).items()})
    finally:
        policy.train()
    return result


# --- the run -----------------------------------------------------------------------------------
@dataclass
class TrainSummary:
    """What a finished (or resumed) run did."""

    out: Path
    checkpoint: Path
    start_step: int
    step: int
    seconds: float
    samples: int
    last: dict[str, float]
    #: Which attention path ran (``imitate.fast.CompileState.describe``).
    attention_path: str = ""
    #: The run's effective config (``--init-from`` takes the network of its checkpoint).
    config: TrainConfig | None = None

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Progress:
    """Reported after every step to ``on_progress``."""

    step: int
    total: int
    loss: float
    samples_per_second: float
    note: str = ""


def train(config: TrainConfig, on_progress: Callable[[Progress], None] | None = None
          ) -> TrainSummary:
    """Run (or resume) behaviour cloning as configured; returns what was done.

    Under ``torchrun`` (``imitate.distributed``) every rank calls this: they train one model
    data-parallel, rank 0 alone writes the run's files and reports ``on_progress``.

    Raises ``ValueError`` (including ``DatasetError`` and ``CheckpointError``) on bad input,
    and before anything is written when a chosen logger's package is not installed.
    """
    check_logger_packages(config.logger)
    ranks = distributed.torchrun_ranks()
    if ranks.parallel:
        distributed.check_batch_split(ranks, config.tasks_per_batch)
        if config.algo == "dagger":
            raise ValueError("--algo dagger is not supported under torchrun (DAgger collects "
                             "between steps in one process); train it without torchrun")
    device = distributed.rank_device(ranks, resolve_device(config.device))
    start: Checkpoint | None = None
    if config.init_from is not None:
        start = load_checkpoint(config.init_from)  # fail fast, before the folder is touched
        config = resolve_init_from(config, start.policy.config)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if config.resume and not any((config.out / name).exists()
                                 for name in (CHECKPOINT_NAME, CONFIG_NAME)):
        raise ValueError(f"--resume: {config.out} holds no run to resume (no {CHECKPOINT_NAME} "
                         f"or {CONFIG_NAME}); check the path, or drop --resume to start a new "
                         "run there")
    # Rank 0, the only writer, holds the run folder's lock.
    lock = folder_lock(config.out, LOCK_NAME, "training run") if ranks.main else nullcontext()
    with distributed.process_group(ranks, device), lock:
        return _train_locked(config, device, on_progress if ranks.main else None, start, ranks)


def _train_locked(config: TrainConfig, device: torch.device,
                  on_progress: Callable[[Progress], None] | None,
                  start: Checkpoint | None, ranks: Ranks) -> TrainSummary:
    """``train`` once the run folder's lock is held (rank 0 checks the folder for all)."""
    saved_config = distributed.from_main(ranks, lambda: check_run_folder(config))
    with open_training_dataset(config.demos) as dataset:
        check_not_evaluation_data(config, dataset)
        first_steps = int((saved_config or {}).get("steps", config.steps))
        path = fast.configure(config.compiles(first_steps), device)
        if config.compile == "auto" and not config.compiles(first_steps):
            path = fast.CompileState(reason=f"--compile auto: {first_steps} steps < "
                                     f"{COMPILE_AUTO_MIN_STEPS}")
        logger.info("training with the %s", path.describe())
        summary = _train(config, dataset, saved_config, device, on_progress, start, ranks)
        summary.attention_path = path.describe()
        summary.config = config
        return summary


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a run after it saved a checkpoint (the message says where)."""


class _Interrupts:
    """SIGINT and SIGTERM during training: between optimisation steps they only set a flag, so
    the loop saves a checkpoint of a consistent step and stops; while a DAgger round collects
    (``collecting``) they interrupt at once (a round is redone or kept on resume). Installed
    only in the main thread, where Python delivers signals."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self.collecting = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: object) -> None:
        self.requested = signal.Signals(number).name
        if self.collecting:
            raise KeyboardInterrupt


def _train(config: TrainConfig, dataset: DemoDataset, saved_config: dict[str, Any] | None,
           device: torch.device, on_progress: Callable[[Progress], None] | None,
           start: Checkpoint | None, ranks: Ranks) -> TrainSummary:
    """The training loop of ``train`` (``saved_config`` is the run's when resuming; ``start``
    the checkpoint of ``--init-from``; every rank restores from rank 0's checkpoint)."""
    resuming = saved_config is not None
    train_positions, val_positions = holdout_split(dataset, config.holdout_every)
    sampler_rng = np.random.default_rng([config.seed, 0])
    val_rng = np.random.default_rng([config.seed, 1])
    generator = torch.Generator().manual_seed(config.seed)

    def make_sampler(extra: tuple[DemoDataset, ...]) -> PairSampler:
        return PairSampler(dataset, tasks_per_batch=config.tasks_per_batch,
                           pairs_per_task=config.pairs_per_task, rng=sampler_rng,
                           condition_positions=train_positions, pair_positions=train_positions,
                           extra_pairs=extra)

    sampler = make_sampler(())
    validation = _validation_sampler(dataset, config, val_rng, train_positions, val_positions)

    torch.manual_seed(config.seed)
    policy = OneShotPolicy(config.policy_config())
    if start is not None:
        policy.load_state_dict(start.policy.state_dict())
    policy.to(device)
    optimizer = torch.optim.Adamax(policy.parameters(), lr=config.lr)
    step = 0
    if resuming:
        step = _restore(config, policy, optimizer, sampler_rng, val_rng, generator, device)
    model = distributed.data_parallel(ranks, policy, device)
    if ranks.main:
        _prepare_folder(config, resuming)
    env, suite_version = _env_metadata(dataset)
    training_record = {"config": config.to_json(), "dataset": str(config.demos),
                       "dataset_command": dataset.manifest.get("command"),
                       "dataset_tasks": list(dataset.tasks),
                       "allow_test_tasks": config.allow_test_tasks,
                       "evaluation_data": evaluation_data_problems(dataset.manifest,
                                                                   dataset.tasks)}
    if start is not None:
        training_record["init_from"] = {
            "path": str(config.init_from), "step": start.step,
            "sha256": sha256_file(resolve_checkpoint(config.init_from)),
            "training": start.training}

    def checkpoint(at_step: int) -> Path:
        if not ranks.main:
            return config.out / CHECKPOINT_NAME
        return save_checkpoint(config.out / CHECKPOINT_NAME, policy, env=env,
                               suite_version=suite_version, training=training_record,
                               step=at_step, optimizer_state=optimizer.state_dict(),
                               rng_state=_rng_state(sampler_rng, val_rng, generator))

    metrics = MetricsLog(config.out, step, config.logger, run_config=config.to_json(),
                         wandb_project=config.wandb_project) if ranks.main else None
    start_step, samples, last = step, 0, {}
    dagger = config.dagger() if config.algo == "dagger" else None
    # The round schedule is fixed by the run's first --steps, so a resumed run (even with more
    # steps) collects at the same points as an uninterrupted one.
    first_steps = int((saved_config or {}).get("steps", config.steps))
    round_starts = dagger.round_starts(first_steps) if dagger else []
    rounds: list[DemoDataset | None] = []
    dagger_figures: dict[str, float] = {}  # in every metrics row once a round is collected
    started = time.perf_counter()
    collecting = 0.0  # seconds spent collecting DAgger rounds (not counted in samples/s)
    # CPU seconds (all threads) of batch assembly and optimisation steps since the run began,
    # without validation, checkpoints or DAgger collection: runs compare at equal CPU time.
    train_cpu = resumed_cpu_seconds(config.out, step) if resuming else 0.0
    interrupts = _Interrupts()
    saved_step = step if resuming else -1
    try:
        interrupts.__enter__()
        policy.train()
        while step < config.steps:
            if distributed.any_rank(ranks, interrupts.requested is not None):
                signal_name = interrupts.requested or "a signal to another rank"
                if step == 0:  # nothing learnt yet (and the first step initialises the layers)
                    raise TrainingInterrupted(f"{signal_name} before the first step; "
                                              "nothing saved")
                if saved_step != step:
                    checkpoint(step)
                raise TrainingInterrupted(f"{signal_name} at step {step}: checkpoint "
                                          f"saved in {config.out / CHECKPOINT_NAME}; continue "
                                          "with --resume")
            if len(rounds) < len(round_starts) and step >= round_starts[len(rounds)]:
                round_start = time.perf_counter()
                interrupts.collecting = True
                rounds.append(_dagger_round(config, len(rounds) + 1, policy, dataset,
                                            train_positions, on_progress, step))
                interrupts.collecting = False
                sampler = make_sampler(tuple(r for r in rounds if r is not None))
                training_record["dagger_rounds"] = len(rounds)
                dagger_figures = dagger_round_figures(config.out, dagger, len(rounds))
                collecting += time.perf_counter() - round_start
                continue
            step_start = time.process_time()
            batch = to_tensors(sampler.sample(), config.conditioning, device)
            if step == 0 and not resuming and start is None:
                initialise_policy(policy, batch, generator)
            loss, logits = train_step(policy, optimizer, batch, generator, ranks=ranks,
                                      model=model)
            train_cpu += time.process_time() - step_start
            step += 1
            samples += len(batch.labels)
            rate = samples / max(time.perf_counter() - started - collecting, 1e-9)
            if on_progress is not None:
                on_progress(Progress(step, config.steps, loss, rate))
            if step % config.log_every == 0 or step == config.steps:
                last = {"step": step, "loss": loss, "samples_per_s": rate,
                        "cpu_s": train_cpu,
                        **{f"train_{k}": v for k, v in
                           share_accuracies(policy, logits, batch, ranks).items()}}
                if validation is not None:
                    last.update(validate(policy, validation, config.conditioning, device,
                                         generator, ranks))
                last.update(dagger_figures)
            if step % config.checkpoint_every == 0 or step == config.steps:
                checkpoint(step)
                saved_step = step
            if config.snapshot_every and step % config.snapshot_every == 0 and ranks.main:
                save_checkpoint(config.out / SNAPSHOT_DIR / f"step-{step:07d}.pt", policy,
                                env=env, suite_version=suite_version,
                                training=training_record, step=step)
            if last.get("step") == step and metrics is not None:  # after the checkpoint: a
                metrics.write(last)  # full disk then changes neither
    finally:
        interrupts.__exit__()
        if metrics is not None:
            metrics.close()
        for collected in rounds:
            if collected is not None:
                collected.close()
    if ranks.main and step == start_step and not (config.out / CHECKPOINT_NAME).exists():
        checkpoint(step)
    return TrainSummary(out=config.out, checkpoint=config.out / CHECKPOINT_NAME,
                        start_step=start_step, step=step,
                        seconds=time.perf_counter() - started - collecting, samples=samples,
                        last=last)


def _dagger_round(config: TrainConfig, number: int, policy: OneShotPolicy,
                  dataset: DemoDataset, positions: dict[str, np.ndarray],
                  on_progress: Callable[[Progress], None] | None, step: int
                  ) -> DemoDataset | None:
    """Round ``number``'s aggregate (collected now unless a complete one is on disk); None when
    it holds no rollout."""
    dagger = config.dagger()
    done = completed_rounds(config.out, dagger.rounds)
    if len(done) >= number:
        folder = done[number - 1]
    else:
        def report(index: int, total: int) -> None:
            if on_progress is not None:
                on_progress(Progress(step, config.steps, float("nan"), 0.0,
                                     note=f"DAgger round {number}: rollout {index}/{total}"))

        folder = collect_round(config.out, number, policy, dataset, positions, dagger,
                               config.seed, on_rollout=report, workers=config.dagger_workers,
                               backend=config.backend, ray_address=config.ray_address)
    try:
        return DemoDataset(folder)
    except DatasetError:  # every rollout of the round failed to start
        logger.warning("DAgger round %d collected nothing", number)
        return None


def _prepare_folder(config: TrainConfig, resuming: bool) -> None:
    """Rank 0, before the first step: a new run's folder and ``config.json``, no temporaries."""
    if not resuming:
        config.out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(config.out / "dagger", ignore_errors=True)  # rounds of an unsaved run
    if remove_temporaries(config.out):
        logger.info("removed temporary files left in %s by an interrupted run", config.out)
    if not resuming:
        atomic_write_bytes(config.out / CONFIG_NAME,
                           json.dumps(config.to_json(), indent=2).encode())


def _validation_sampler(dataset: DemoDataset, config: TrainConfig, rng: np.random.Generator,
                        train_positions: dict[str, np.ndarray],
                        val_positions: dict[str, np.ndarray]) -> PairSampler | None:
    """Pairs from held-out demos, conditioned on training demos; None when nothing is held out."""
    if not any(len(v) for v in val_positions.values()):
        logger.info("no demo held out for validation (holdout_every=%d, too few demos per task)",
                    config.holdout_every)
        return None
    return PairSampler(dataset, tasks_per_batch=config.tasks_per_batch,
                       pairs_per_task=config.pairs_per_task, rng=rng,
                       condition_positions=train_positions, pair_positions=val_positions)


def _rng_state(sampler_rng: np.random.Generator, val_rng: np.random.Generator,
               generator: torch.Generator) -> dict[str, Any]:
    """The RNG states a checkpoint saves for ``_restore``: batches, validation batches, dropout."""
    return {"sampler": sampler_rng.bit_generator.state, "validation": val_rng.bit_generator.state,
            "dropout": generator.get_state()}


def _env_metadata(dataset: DemoDataset) -> tuple[dict[str, Any], int]:
    """The dataset's env parameters and suite version, recorded in every checkpoint."""
    manifest = dataset.manifest
    return manifest.get("env", {}), int(manifest.get("suite_version", 0))


def _restore(config: TrainConfig, policy: OneShotPolicy, optimizer: torch.optim.Optimizer,
             sampler_rng: np.random.Generator, val_rng: np.random.Generator,
             generator: torch.Generator, device: torch.device) -> int:
    """Load the run's last checkpoint into the given objects; returns its step."""
    path = config.out / CHECKPOINT_NAME
    saved = load_checkpoint(path, device=device)
    if saved.optimizer_state is None or saved.rng_state is None:
        raise CheckpointError(f"{path} holds no optimiser or RNG state; it cannot be resumed")
    theirs, mine = saved.policy.config.to_dict(), policy.config.to_dict()
    differ = [key for key in mine if theirs.get(key) != mine[key]]
    if differ:
        raise CheckpointError(f"{path} holds a different network ({differ[0]} = "
                              f"{theirs.get(differ[0])!r}, not {mine[differ[0]]!r}); resume with "
                              "the run's parameters or choose another --out")
    policy.load_state_dict(saved.policy.state_dict())
    optimizer.load_state_dict(saved.optimizer_state)
    sampler_rng.bit_generator.state = saved.rng_state["sampler"]
    val_rng.bit_generator.state = saved.rng_state["validation"]
    generator.set_state(saved.rng_state["dropout"].cpu())
    logger.info("resumed %s at step %d", path, saved.step)
    return saved.step

