"""DAgger data collection (paper section 3.3): run the current policy, label what it visits.

A round collects ``rollouts`` episodes on training tasks drawn with replacement from the dataset:

- most start at the beginning of a stage: the clean scripted expert builds the first ``s`` stages
  from a seeded initial configuration (``s`` uniform in ``0 .. stages - 1``), then the learner acts
  for at most one stage (until the stage count grows, the episode ends, or ``horizon_per_stage``
  steps pass), as the paper does;
- a ``full_fraction`` of them are whole episodes from the initial configuration.

While the learner acts, every visited state is labelled with ``ScriptedExpert`` (the clean expert
action for that state), and the executed action is the expert's with probability ``beta`` and the
policy's greedy action otherwise. The learner is conditioned on a successful training demo of the
same task. Each rollout is stored (observations, executed actions, expert labels) as a ``Demo``
with ``success`` = whether the segment completed its stage (or the episode), in a per-round
aggregate dataset (``imitate.data.create_aggregate``) that training then draws pairs from.

Beta schedule (documented choice; the paper gives none): ``beta_r = beta0 * decay ** (r - 1)`` for
round ``r = 1, 2, ...`` (defaults 0.5 and 0.5: 0.5, 0.25, 0.125, ...). Seeds come from the DAgger
stream (``Stream.DAGGER``), so collected data never repeats a training or evaluation start.
"""

from __future__ import annotations

import io
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch

import envs
from envs.expert import ScriptedExpert
from imitate import fast
from imitate.agent import agent_for_demo
from imitate.data import DemoDataset, append_shard, create_aggregate
from imitate.data import format as fmt
from imitate.data.record import env_kwargs
from imitate.data.seeds import Stream, demo_seeds
from imitate.episodes import pack_demo, play, reset
from imitate.model import OneShotPolicy, PolicyConfig
from imitate.options import flag, require_positive_ints
from imitate.workers import job_runner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaggerConfig:
    """DAgger settings (``imitate train --algo dagger``).

    Attributes:
        rounds: collection rounds; round ``r`` starts after ``r / (rounds + 1)`` of the steps.
        rollouts: rollouts collected per round.
        full_fraction: share of rollouts that are whole episodes (the rest: one stage each).
        beta0, decay: the expert-execution probability of round ``r`` is
            ``beta0 * decay ** (r - 1)``.
        ensemble: demo subsamples the learner averages while collecting.
    """

    rounds: int = 4
    rollouts: int = 24
    full_fraction: float = 0.25
    beta0: float = 0.5
    decay: float = 0.5
    ensemble: int = 4

    def __post_init__(self) -> None:
        require_positive_ints(self, ("rounds", "rollouts", "ensemble"), prefix="--dagger-")
        for name in ("full_fraction", "beta0", "decay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{flag(name, '--dagger-')} must be in [0, 1], got {value}")

    def beta(self, round_number: int) -> float:
        """Probability of executing the expert's action in round ``round_number`` (1-based)."""
        return self.beta0 * self.decay ** (round_number - 1)

    def round_starts(self, steps: int) -> list[int]:
        """Optimisation step at which each round collects (rounds split the run evenly)."""
        return [max(1, steps * r // (self.rounds + 1)) for r in range(1, self.rounds + 1)]


def round_folder(run: Path, round_number: int) -> Path:
    return run / "dagger" / f"round-{round_number:02d}"


def completed_rounds(run: Path, rounds: int) -> list[Path]:
    """Aggregate folders of the rounds already collected, in order (a round is complete once
    its manifest says so: ``collect_round`` marks it last)."""
    done = []
    for number in range(1, rounds + 1):
        folder = round_folder(run, number)
        try:
            manifest = fmt.load_manifest(folder)
        except fmt.DatasetError:
            break
        if not manifest.get("round_complete"):
            break
        done.append(folder)
    return done



def dagger_round_figures(run: Path, dagger: DaggerConfig, rounds: int) -> dict[str, float]:
    """What the first ``rounds`` DAgger rounds of ``run`` collected, read from their manifests:

    - ``dagger_rounds``: rounds collected so far;
    - ``dagger_beta``: the last round's probability of executing the expert's action;
    - ``dagger_rollouts``: rollouts stored over all rounds (a rollout whose start stage the
      expert could not build is not stored);
    - ``dagger_labelled_steps``: expert-labelled steps over all rounds (what training adds);
    - ``dagger_success``: share of the last round's stored rollouts that completed their stage
      (or, for whole episodes, the task).
    """
    entries = [fmt.shard_entries(fmt.load_manifest(round_folder(run, number)))
               for number in range(1, rounds + 1)]
    last_stored = sum(entry.num_demos for entry in entries[-1])
    last_failed = sum(len(entry.failed) for entry in entries[-1])
    return {"dagger_rounds": rounds, "dagger_beta": dagger.beta(rounds),
            "dagger_rollouts": sum(e.num_demos for collected in entries for e in collected),
            "dagger_labelled_steps": sum(e.steps for collected in entries for e in collected),
            "dagger_success": (last_stored - last_failed) / last_stored if last_stored else 0.0}

def rollout_demo(env: Any, expert: Any, agent: Any, layout: str, seeds: Any, *, beta: float,
                 full: bool, index: int) -> fmt.Demo | None:
    """One DAgger rollout as a ``Demo`` (None when the expert could not reach the start stage).

    The clean expert first builds the start stage's stages; then the learner, mixed with the
    expert by ``beta``, plays one stage (or, when ``full``, the rest of the episode), every state
    labelled by the expert.
    """
    rng = np.random.default_rng(seeds.noise_seed)
    observation, info = reset(env, layout, seeds.env_seed)
    num_stages = int(info["num_stages"])
    per_stage = env.unwrapped.horizon_per_stage
    start_stage = 0 if full else int(rng.integers(num_stages))
    if info["stage"] < start_stage:  # the clean expert builds the first stages
        built = play(env, lambda _: (expert.act(env), None), observation, info,
                     max_steps=per_stage * start_stage,
                     until=lambda step_info: step_info["stage"] >= start_stage)
        if built.done or built.info["stage"] < start_stage:
            return None
        observation, info = built.observations[-1], built.info

    def mixed(observation: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        label = expert.act(env)
        return (label if rng.random() < beta else agent.act(observation)), label

    episode = play(env, mixed, observation, info,
                   max_steps=per_stage * (num_stages - start_stage) if full else per_stage,
                   until=None if full else lambda step_info: step_info["stage"] > start_stage)
    return pack_demo(episode, task=layout, index=index, attempt=0,
                     success=bool(episode.info["is_success"]) or episode.reached,
                     env_seed=seeds.env_seed, noise_seed=seeds.noise_seed)


@dataclass(frozen=True)
class RolloutJob:
    """One rollout of a round, drawn by the trainer: everything a worker needs to play it."""

    index: int
    task: str
    conditioning: fmt.Demo
    seeds: Any
    full: bool
    beta: float
    ensemble: int


def draw_rollouts(dataset: DemoDataset, condition_positions: dict[str, np.ndarray],
                  config: DaggerConfig, seed: int, round_number: int) -> list[RolloutJob]:
    """Round ``round_number``'s rollouts, drawn from its seeded stream in rollout order (task,
    conditioning demo, whole episode or one stage), so they do not depend on who plays them."""
    rng = np.random.default_rng([seed, Stream.DAGGER, round_number])
    jobs = []
    for index in range(config.rollouts):
        task = dataset.tasks[int(rng.integers(len(dataset.tasks)))]
        positions = np.intersect1d(condition_positions[task], dataset.successful(task))
        conditioning = dataset.demo(task, int(rng.choice(positions)))
        seeds = demo_seeds(seed, Stream.DAGGER, task, round_number * 1_000_000 + index)
        full = bool(rng.random() < config.full_fraction)
        jobs.append(RolloutJob(index, task, conditioning, seeds, full, config.beta(round_number),
                               config.ensemble))
    return jobs


def policy_bytes(policy: Any) -> tuple[dict[str, Any], bytes]:
    """The policy's network config and its weights (``state_dict``, on the CPU) as bytes: what
    the rollout workers rebuild it from."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in policy.state_dict().items()}, buffer)
    return policy.config.to_dict(), buffer.getvalue()


def _rollout_worker(network: dict[str, Any], weights: bytes, fused: bool, pooled: bool
                    ) -> tuple[Any, Any, Any]:
    """A worker's policy (eval mode, CPU, rebuilt from ``policy_bytes``), env and expert; pool
    workers run torch on 1 thread each."""
    if pooled:
        torch.set_num_threads(1)
    fast.configure(fused)  # a cached build: the trainer built it
    policy = OneShotPolicy(PolicyConfig(**network))
    policy.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
    policy.eval()
    return policy, gymnasium.make(envs.ENV_ID, **env_kwargs()), ScriptedExpert()


def _play_rollout(worker: tuple[Any, Any, Any], job: RolloutJob) -> tuple[int, fmt.Demo | None]:
    policy, env, expert = worker
    agent = agent_for_demo(policy, job.conditioning, ensemble=job.ensemble,
                           seed=job.seeds.noise_seed)
    return job.index, rollout_demo(env, expert, agent, job.task, job.seeds, beta=job.beta,
                                   full=job.full, index=job.index)


def _close_rollout_worker(worker: tuple[Any, Any, Any]) -> None:
    worker[1].close()


def collect_round(run: Path, round_number: int, policy: Any, dataset: DemoDataset,
                  condition_positions: dict[str, np.ndarray], config: DaggerConfig, seed: int,
                  on_rollout: Callable[[int, int], None] | None = None, *, workers: int = 1,
                  backend: str = "process", ray_address: str | None = None) -> Path:
    """Collect round ``round_number`` into its own aggregate folder (remade from scratch if an
    earlier attempt was interrupted) and mark it complete; returns the folder.

    The rollouts (``draw_rollouts``) run off the training process in ``workers`` workers
    (``imitate.workers.job_runner`` with ``backend`` and ``ray_address``; 1 worker: in this
    process), each rebuilding the policy on the CPU from its weights' bytes, with the attention
    path configured here (``imitate.fast``). Results are stored in rollout order, so the round's
    shards are the same bytes for any number of workers.
    """
    folder = round_folder(run, round_number)
    if folder.exists():
        shutil.rmtree(folder)
    beta = config.beta(round_number)
    create_aggregate(folder, {"env": {"id": envs.ENV_ID, "kwargs": env_kwargs()},
                              "round": round_number, "beta": beta, "seed": seed})
    jobs = draw_rollouts(dataset, condition_positions, config, seed, round_number)
    network, weights = policy_bytes(policy)
    played: dict[int, fmt.Demo | None] = {}
    with job_runner(workers, _rollout_worker, (network, weights, fast.state().path == "compiled"),
                    _play_rollout, _close_rollout_worker, backend=backend,
                    ray_address=ray_address) as run_jobs:
        for index, demo in run_jobs(jobs):
            played[index] = demo
            if on_rollout is not None:
                on_rollout(len(played), config.rollouts)
    by_task: dict[str, list[fmt.Demo]] = {}
    for job in jobs:  # rollout order, whichever worker finished first
        demo = played[job.index]
        if demo is not None:
            by_task.setdefault(job.task, []).append(demo)
    for demos in by_task.values():
        append_shard(folder, demos, header={"round": round_number, "beta": beta})
    manifest = fmt.load_manifest(folder)
    manifest["round_complete"] = True
    fmt.save_manifest(folder, manifest)
    logger.info("DAgger round %d: %d rollouts, %d steps labelled (beta %.3f)", round_number,
                sum(len(d) for d in by_task.values()),
                sum(d.steps for demos in by_task.values() for d in demos), beta)
    return folder
