"""``imitate render``: one evaluation episode as a video, demo and rollout side by side.

The episode is episode ``episode`` of ``imitate eval --seed SEED`` for that task: the same
conditioning demo (evaluation-demo stream) and the same initial configuration
(evaluation-episode stream), so a video shows exactly what the report counted. With no checkpoint
the scripted expert (without noise) acts instead of a policy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

import envs
from envs.expert import DEFAULT_NOISE_STD, ScriptedExpert
from imitate.agent import agent_for_demo
from imitate.attention import attention_strip, trace_policy
from imitate.checkpoint import load_checkpoint
from imitate.data.record import env_kwargs
from imitate.data.seeds import Stream, demo_seeds
from imitate.evaluation import record_conditioning_demo, run_expert, run_policy
from imitate.options import check_episode_options
from imitate.video import RENDER_EVERY, FrameRecorder, compose, write_mp4


@dataclass(frozen=True)
class RenderResult:
    path: Path
    frames: int
    outcome: str
    stage: int
    num_stages: int
    seconds: float


def render_episode(checkpoint: Path | None, task: str, out: Path, *, seed: int = 0,
                   episode: int = 0, ensemble: int = 10, every: int = RENDER_EVERY,
                   size: int = 256, attention: bool = False, labels: bool = False
                   ) -> RenderResult:
    """Render the episode and write ``out`` (mp4); ``checkpoint`` None renders the expert.
    ``attention`` adds under each frame the policy's attention behind that step's action
    (``imitate.attention.attention_strip``); ``labels`` writes each cube's letter over it."""
    if every < 1:
        raise ValueError(f"--every must be at least 1, got {every}")
    check_episode_options(seed=seed, episode=episode, ensemble=ensemble)
    if attention and checkpoint is None:
        raise ValueError("--attention needs a policy (--checkpoint): the expert has no attention")
    if size < 64 or size % 8:
        raise ValueError(f"--size must be a multiple of 8 and at least 64 px (H.264 blocks), "
                         f"got {size}")
    if Path(out).suffix.lower() != ".mp4":
        raise ValueError(f"--out must name an .mp4 file, got {out}")
    layout = envs.parse_task(task).layout
    policy = load_checkpoint(checkpoint).policy if checkpoint is not None else None
    start = time.perf_counter()
    env = gymnasium.make(envs.ENV_ID, render_mode="rgb_array", render_size=size, **env_kwargs())
    expert = ScriptedExpert()
    try:
        demo_views: list[Any] = []
        demo = record_conditioning_demo(env, expert, layout, episode, seed, DEFAULT_NOISE_STD,
                                        demo_views, every, labels).demo
        seeds = demo_seeds(seed, Stream.EVAL_EPISODE, layout, episode)
        rollout = FrameRecorder(every=every, labels=labels)
        trace = None
        if policy is None:
            info = run_expert(env, expert, layout, seeds.env_seed, rollout)
            role = "expert"
        elif attention:
            trace, info = trace_policy(policy, demo, layout, seed=seed, episode=episode,
                                       ensemble=ensemble, env=env, on_step=rollout)
            role = "policy"
        else:
            def make_agent() -> Any:
                return agent_for_demo(policy, demo, ensemble=ensemble, seed=seeds.noise_seed)

            info = run_policy(env, make_agent, layout, seeds.env_seed, rollout)[0]
            role = "policy"
    finally:
        env.close()
    frames = compose(layout, [("demo", demo_views[-1]), (role, rollout)])
    if trace is not None:
        frames = _with_attention(frames, rollout, trace)
    path = write_mp4(Path(out), frames)
    return RenderResult(path=path, frames=len(frames), outcome=str(rollout.outcome),
                        stage=int(info["stage"]), num_stages=int(info["num_stages"]),
                        seconds=time.perf_counter() - start)


def _with_attention(frames: list[Any], rollout: FrameRecorder, trace: Any) -> list[Any]:
    """Each composed frame with the attention strip of the rollout step it shows underneath
    (frames past the rollout's end, and the held end, show its last step)."""
    width = frames[0].shape[1]
    out = []
    for index, frame in enumerate(frames):
        shown = rollout.frames[min(index, len(rollout.frames) - 1)]
        out.append(np.concatenate([frame, attention_strip(trace, shown.step, width)], axis=0))
    return out
