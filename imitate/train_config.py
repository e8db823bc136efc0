"""What a training run is configured with, and the checks of its inputs before it writes anything.

``TrainConfig`` holds the parameters of ``imitate train`` (validated on construction); the run
saves it as ``config.json`` in its folder. Before a run starts:

- ``check_run_folder`` refuses a folder that already holds a run (without ``--resume``) and, when
  resuming, reads the saved ``config.json`` (``read_run_config``) and refuses parameters that
  would change what is learnt (every field but ``RESUMABLE_CHANGES``);
- ``open_training_dataset`` refuses a dataset with a truncated, altered or missing shard, and
  ``check_not_evaluation_data`` one that holds evaluation data (unless ``allow_test_tasks``).

``logger`` and ``wandb_project`` choose where the metrics rows go besides ``metrics.jsonl``
(``imitate.metrics``); like ``steps`` or ``threads`` they may change when a run resumes.

The DAgger fields (``dagger_*``) are ``imitate.dagger.DaggerConfig``'s, flattened so that they
are command-line flags and keys of ``config.json``; their defaults are ``DaggerConfig``'s.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from imitate.conditioning import CONDITIONING_MODES
from imitate.dagger import DaggerConfig
from imitate.data import DatasetError, DemoDataset, verify_dataset
from imitate.metrics import DEFAULT_WANDB_PROJECT, JSONL, LOGGERS
from imitate.model import CONTEXT_FORMS, TEMPORAL_SCORINGS, PolicyConfig
from imitate.novelty import evaluation_data_problems
from imitate.options import require_choices, require_positive_ints
from imitate.workers import check_backend

#: The training run's logger: these checks' messages read as the run's (``imitate.training: ...``).
logger = logging.getLogger("imitate.training")

#: The run folder's latest checkpoint (``imitate.checkpoint``).
CHECKPOINT_NAME = "policy.pt"
#: The run folder's ``TrainConfig`` (``TrainConfig.to_json``).
CONFIG_NAME = "config.json"
#: The run folder's writer lock (``imitate.files.folder_lock``).
LOCK_NAME = ".train.lock"
ALGORITHMS = ("bc", "dagger")
DEVICES = ("auto", "cpu", "cuda")
COMPILE_CHOICES = ("auto", "on", "off")
#: ``--compile auto`` uses the fused kernel in runs of at least this many steps.
COMPILE_AUTO_MIN_STEPS = 1000
#: Fields that may differ between a run and its resumption (they do not change what is learnt).
RESUMABLE_CHANGES = ("steps", "device", "resume", "threads", "quiet", "compile", "logger",
                     "wandb_project", "dagger_workers", "backend", "ray_address",
                     "snapshot_every")
#: The run folder's sub-folder of kept weights (``TrainConfig.snapshot_every``).
SNAPSHOT_DIR = "snapshots"
#: Characters W&B refuses in a project name.
_WANDB_PROJECT_FORBIDDEN = "/\\#?%:"
_POLICY_DEFAULTS = PolicyConfig()
_DAGGER_DEFAULTS = DaggerConfig()


@dataclass
class TrainConfig:
    """Parameters of ``imitate train``; validated on construction (``ValueError``).

    Attributes:
        demos: dataset folder made by ``imitate demos generate``.
        out: run folder (``policy.pt``, ``config.json``, ``metrics.jsonl``).
        algo: ``bc`` (behaviour cloning) or ``dagger`` (BC, plus rounds of expert-labelled
            learner rollouts added to the data; ``imitate.dagger``).
        conditioning: what the policy sees of the demo: ``full`` (temporal dropout), ``snapshot``
            (the last frame of each stage) or ``final`` (the last frame).
        steps: total optimisation steps of the run (a resumed run continues up to it).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        resume: continue the run in ``out`` from its last checkpoint.
        seed: root seed of the weights, the batches and temporal dropout.
        lr: Adamax learning rate (paper: 1e-3).
        tasks_per_batch: tasks (each with one conditioning demo) per step.
        pairs_per_task: (observation, label) pairs per task per step.
        hidden: width D of the network (paper: 64).
        temporal_scoring: ``dot`` or ``additive`` (paper) scores in the context network's temporal
            attention (``PolicyConfig.temporal_scoring``).
        context_form: ``module2`` (the paper's context network) or ``0.5`` (imitate 0.5's form,
            ``PolicyConfig.context_form``).
        keep_fraction, min_kept_frames: the temporal dropout rule of ``full`` conditioning: keep
            ``max(min_kept_frames, floor(keep_fraction * T))`` of a demo's T frames; stored in the
            checkpoint and used by the evaluation ensemble.
        allow_test_tasks: train on a dataset that holds test-class tasks of its suite or demos
            from an evaluation seed stream (refused otherwise; the checkpoint records it).
        holdout_every: every N-th demo of each task is held out for validation (0: none).
        checkpoint_every: steps between checkpoints.
        snapshot_every: every this many steps, also keep the weights (no optimiser state) as
            ``snapshots/step-NNNNNNN.pt``, for learning curves of task success
            (``scripts/learning_curves.py``); 0: none. May change when a run resumes.
        log_every: steps between metrics rows (and validation batches).
        threads: torch CPU threads (default: all cores).
        compile: run the additive attention in the fused C++ kernel (``imitate.fast``), in the
            training steps and in DAgger's rollouts: ``on``, ``off``, or ``auto`` (on for runs
            of at least ``COMPILE_AUTO_MIN_STEPS`` steps; the first build on a machine takes
            about a minute, later runs load it in about a second); falls back to the eager
            code, with a warning, where building fails.
        quiet: no progress bar.
        logger: where the metrics rows go (``imitate.metrics.LOGGERS``): ``jsonl``
            (``metrics.jsonl``, always written), ``tensorboard``, ``wandb`` (offline); a
            comma-separated string or a sequence of names, stored as a tuple in ``LOGGERS``
            order.
        wandb_project: the W&B project of ``--logger wandb``.
        init_from: start from this checkpoint's weights instead of a fresh initialisation
            (fine-tuning; ``pretrained`` names the shipped policy). The network is the
            checkpoint's: ``resolve_init_from`` takes its architecture fields (``hidden``,
            ``conditioning``, ``temporal_scoring``, ``context_form``, ``keep_fraction``,
            ``min_kept_frames``) and refuses one set to a value that is neither the default nor
            the checkpoint's. The optimiser starts fresh; the checkpoint's training tasks count
            as trained on (``imitate.novelty``).
        dagger_rounds, dagger_rollouts, dagger_full_fraction, dagger_beta0, dagger_decay,
        dagger_ensemble: ``imitate.dagger.DaggerConfig`` (used when ``algo`` is ``dagger``).
        dagger_workers: worker processes a DAgger round's rollouts run in (1: in the training
            process; the round's data is the same for any number).
        backend, ray_address: where those workers run (``imitate.workers.job_runner``:
            ``process``, a local spawn pool, or ``ray``); like ``dagger_workers`` they do not
            change what is learnt and may change when a run resumes.
    """

    demos: Path
    out: Path
    algo: str = "bc"
    conditioning: str = "full"
    steps: int = 2000
    device: str = "auto"
    resume: bool = False
    seed: int = 0
    lr: float = 1e-3
    tasks_per_batch: int = 16
    pairs_per_task: int = 32
    hidden: int = 64
    temporal_scoring: str = "dot"
    context_form: str = _POLICY_DEFAULTS.context_form
    keep_fraction: float = _POLICY_DEFAULTS.keep_fraction
    min_kept_frames: int = _POLICY_DEFAULTS.min_kept_frames
    allow_test_tasks: bool = False
    holdout_every: int = 20
    checkpoint_every: int = 250
    snapshot_every: int = 0
    log_every: int = 25
    threads: int | None = None
    compile: str = "auto"
    quiet: bool = False
    logger: tuple[str, ...] = (JSONL,)
    wandb_project: str = DEFAULT_WANDB_PROJECT
    init_from: Path | None = None
    dagger_rounds: int = _DAGGER_DEFAULTS.rounds
    dagger_rollouts: int = _DAGGER_DEFAULTS.rollouts
    dagger_full_fraction: float = _DAGGER_DEFAULTS.full_fraction
    dagger_beta0: float = _DAGGER_DEFAULTS.beta0
    dagger_decay: float = _DAGGER_DEFAULTS.decay
    dagger_ensemble: int = _DAGGER_DEFAULTS.ensemble
    dagger_workers: int = 1
    backend: str = "process"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        self.demos, self.out = Path(self.demos), Path(self.out)
        if self.init_from is not None:
            self.init_from = Path(self.init_from)
        require_choices(self, {"algo": ALGORITHMS, "conditioning": CONDITIONING_MODES,
                               "temporal_scoring": TEMPORAL_SCORINGS, "device": DEVICES,
                               "compile": COMPILE_CHOICES, "context_form": CONTEXT_FORMS})
        require_positive_ints(self, ("steps", "tasks_per_batch", "pairs_per_task", "hidden",
                                     "checkpoint_every", "log_every", "min_kept_frames",
                                     "dagger_workers"))
        check_backend(self.backend, self.ray_address)
        if not (math.isfinite(self.keep_fraction) and 0.0 < self.keep_fraction <= 1.0):
            raise ValueError(f"--keep-fraction must be in (0, 1], got {self.keep_fraction}")
        if self.snapshot_every < 0:
            raise ValueError(f"--snapshot-every must be 0 (none) or a positive number of "
                             f"steps, got {self.snapshot_every}")
        if self.holdout_every < 0 or self.holdout_every == 1:
            raise ValueError("--holdout-every must be 0 (no validation) or at least 2, "
                             f"got {self.holdout_every}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {self.threads}")
        if self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed}")
        self.logger = logger_names(self.logger)
        if not self.wandb_project or any(c in _WANDB_PROJECT_FORBIDDEN
                                         for c in self.wandb_project):
            raise ValueError(f"--wandb-project must be a non-empty name without any of "
                             f"{_WANDB_PROJECT_FORBIDDEN}, got {self.wandb_project!r}")
        self.dagger()  # validates the DAgger settings

    def compiles(self, first_steps: int | None = None) -> bool:
        """Whether this run asks for the fused attention kernel; ``auto`` decides on the run's
        first ``--steps`` (``first_steps`` when resuming), so a resumed run keeps its path."""
        steps = self.steps if first_steps is None else first_steps
        return self.compile == "on" or (self.compile == "auto"
                                        and steps >= COMPILE_AUTO_MIN_STEPS)

    def policy_config(self) -> PolicyConfig:
        """The network this run trains."""
        return PolicyConfig(hidden=self.hidden, conditioning=self.conditioning,
                            temporal_scoring=self.temporal_scoring,
                            context_form=self.context_form, keep_fraction=self.keep_fraction,
                            min_kept_frames=self.min_kept_frames)

    def dagger(self) -> DaggerConfig:
        """The DAgger settings of this run."""
        return DaggerConfig(rounds=self.dagger_rounds, rollouts=self.dagger_rollouts,
                            full_fraction=self.dagger_full_fraction, beta0=self.dagger_beta0,
                            decay=self.dagger_decay, ensemble=self.dagger_ensemble)

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON values (paths as strings), as saved in ``config.json``."""
        data = asdict(self)
        data["demos"], data["out"] = str(self.demos), str(self.out)
        data["init_from"] = None if self.init_from is None else str(self.init_from)
        data["logger"] = list(self.logger)
        return data

    def identity(self) -> dict[str, Any]:
        """What must match for ``--resume`` to continue the same run."""
        return {k: v for k, v in self.to_json().items() if k not in RESUMABLE_CHANGES}


#: ``TrainConfig`` fields that are ``PolicyConfig`` fields of the same name: the network.
ARCHITECTURE_FIELDS = ("hidden", "conditioning", "temporal_scoring", "context_form",
                       "keep_fraction", "min_kept_frames")


def resolve_init_from(config: TrainConfig, network: PolicyConfig) -> TrainConfig:
    """``config`` with the architecture fields of the checkpoint it starts from (``network``, its
    ``PolicyConfig``): a field left at its default takes the checkpoint's value; one set to a
    third value is refused (``ValueError``), since those weights cannot be that network."""
    defaults = TrainConfig(demos=Path("."), out=Path("."))
    taken = {}
    for name in ARCHITECTURE_FIELDS:
        mine, theirs = getattr(config, name), getattr(network, name)
        if mine == theirs:
            continue
        if mine != getattr(defaults, name):
            raise ValueError(f"--init-from {config.init_from}: its network has {name} = "
                             f"{theirs!r}, not {mine!r}; drop --{name.replace('_', '-')} (the "
                             "checkpoint's network is used) or start from scratch")
        taken[name] = theirs
    if taken:
        logger.info("--init-from %s: the network is the checkpoint's (%s)", config.init_from,
                    ", ".join(f"{k}={v!r}" for k, v in taken.items()))
    return replace(config, **taken)


def logger_names(names: str | Sequence[str]) -> tuple[str, ...]:
    """``--logger`` values as a tuple in ``LOGGERS`` order, ``jsonl`` always among them:
    ``"tensorboard,wandb"`` or ``["wandb", "tensorboard"]`` -> ``("jsonl", "tensorboard",
    "wandb")``; ``ValueError`` naming an unknown one."""
    if isinstance(names, str):
        names = names.split(",")
    chosen = {str(name).strip() for name in names} - {""}
    unknown = sorted(chosen - set(LOGGERS))
    if unknown:
        raise ValueError(f"unknown --logger {unknown[0]!r}; choose from {', '.join(LOGGERS)} "
                         "(several: comma-separated)")
    return tuple(name for name in LOGGERS if name in chosen | {JSONL})


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (torch.cuda.is_available() "
                         "is False); use --device cpu or auto")
    return torch.device(name)


# --- the run folder ----------------------------------------------------------------------------
def read_run_config(path: Path) -> dict[str, Any]:
    """A run's saved ``config.json``; ``ValueError`` naming the file when it is malformed."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore it, or start a new run "
                         "in another --out") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path} holds {type(saved).__name__}, not a run configuration; "
                         "restore it, or start a new run in another --out")
    reference = TrainConfig(demos=Path("."), out=Path(".")).to_json()
    for name, value in saved.items():
        expected = reference.get(name)
        if expected is None or value is None or name == "compile":
            continue  # unknown to this version, optional and unset, or (compile) once a bool
        kinds = (int, float) if type(expected) is float else (type(expected),)
        if isinstance(value, bool) != isinstance(expected, bool) or not isinstance(value, kinds):
            raise ValueError(f"{path}: {name} must be {type(expected).__name__}, got "
                             f"{value!r}; restore the file, or start a new run in another --out")
    return saved


def check_run_folder(config: TrainConfig) -> dict[str, Any] | None:
    """The saved config of a run to resume, or None for a new run; refuses clashes."""
    checkpoint = config.out / CHECKPOINT_NAME
    saved_path = config.out / CONFIG_NAME
    if not config.resume:
        if checkpoint.exists():
            raise ValueError(f"{config.out} already holds a run; pass --resume to continue it or "
                             "choose another --out")
        return None
    if not checkpoint.exists():
        if saved_path.exists():
            logger.info("no checkpoint in %s yet: starting the run from step 0", config.out)
        return None
    saved = read_run_config(saved_path) if saved_path.exists() else {}
    mine = config.identity()
    clashes = [k for k in mine if k in saved and saved[k] != mine[k]
               and k not in RESUMABLE_CHANGES]
    if clashes:
        name = clashes[0]
        raise ValueError(f"{config.out} was trained with {name} = {saved[name]!r}, not "
                         f"{mine[name]!r}; resume with the run's parameters or choose another "
                         "--out")
    return saved


# --- the dataset -------------------------------------------------------------------------------
def open_training_dataset(root: Path) -> DemoDataset:
    """The dataset, refused up front when any shard is truncated, altered or missing."""
    report = verify_dataset(root)
    if not report.ok:
        files = ", ".join(problem.file for problem in report.problems[:3])
        raise DatasetError(f"{root}: {len(report.problems)} shard(s) failed verification "
                           f"({files}); refusing a corrupt dataset (see 'imitate demos verify "
                           f"{root}')")
    dataset = DemoDataset(root, verify=False)  # every shard was just checked
    if not dataset.manifest.get("complete", True):
        logger.warning("%s is incomplete (an interrupted generate run): training on the demos "
                       "it has", root)
    return dataset


def check_not_evaluation_data(config: TrainConfig, dataset: DemoDataset) -> None:
    """Refuse (``DatasetError``, before anything is written) a dataset that holds test-class
    tasks or evaluation-stream demos, unless ``allow_test_tasks``; then log what it holds."""
    problems = evaluation_data_problems(dataset.manifest, dataset.tasks)
    if not problems:
        return
    if not config.allow_test_tasks:
        raise DatasetError(f"{config.demos} is evaluation data: {'; '.join(problems)}. Training "
                           "on it would make those tasks seen; pass --allow-test-tasks to train "
                           "on it anyway (the checkpoint records it)")
    logger.warning("training on evaluation data (--allow-test-tasks): %s", "; ".join(problems))
