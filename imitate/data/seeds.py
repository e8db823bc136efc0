"""Seed streams: where every demonstration's and every evaluation episode's randomness comes from.

A demonstration (or episode) is identified by ``(root seed, stream, task layout, index, attempt)``.
``numpy.random.SeedSequence(root, spawn_key=(stream, layout key, index, attempt))`` mixes that
identity into two 64-bit words: the env's reset seed (the initial cube layout) and the seed of the
executed-action noise. The stream is then written into the bits above the low 61 of the env seed::

    env_seed = (stream << 61) | (word & (2**61 - 1))          # 0 <= env_seed < 5 * 2**61 < 2**64

so the five streams own disjoint ranges of env seeds **by construction**, not only with high
probability: no training demo can start from the same seed as an evaluation demo or episode,
whatever the root seeds, tasks and indices. Within a stream, different identities give different
seeds with overwhelming probability (61 well-mixed bits). The first four streams (imitate 0.5 and
earlier) keep their seeds, so their datasets and evaluations replay bit for bit.

``--split test`` datasets draw from ``TEST_DEMO``, a stream of their own: before 0.6 they drew from
``EVAL_DEMO`` and so reproduced, byte for byte, the demos ``imitate eval`` conditions on.

The layout key is the layout's ASCII bytes read as one big-endian integer, so it is injective and
does not depend on the suite's task order: the same task gets the same demos in every dataset made
with the same root seed and stream.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np

#: Bits of the env seed below the stream tag.
_LOW_BITS = 61
_LOW_MASK = (1 << _LOW_BITS) - 1


class Stream(IntEnum):
    """Disjoint seed streams (the value is the env seed's bits above the low 61)."""

    #: Demonstrations for training (``imitate demos generate --split train``).
    TRAIN_DEMO = 0
    #: Demonstrations shown to a policy under evaluation (``imitate eval``, ``imitate render``).
    EVAL_DEMO = 1
    #: Initial configurations of evaluation episodes (the policy's own episode).
    EVAL_EPISODE = 2
    #: Rollouts collected by DAgger.
    DAGGER = 3
    #: Demonstrations of test tasks for users (``imitate demos generate --split test``): no
    #: evaluation ever uses this stream.
    TEST_DEMO = 4


#: The stream a ``demos generate --split`` value draws from.
SPLIT_STREAMS: dict[str, Stream] = {"train": Stream.TRAIN_DEMO, "test": Stream.TEST_DEMO}
#: Streams that evaluation draws from: ``imitate train`` refuses datasets recorded from them.
EVALUATION_STREAMS = frozenset({Stream.EVAL_DEMO, Stream.EVAL_EPISODE})


class DemoSeeds(NamedTuple):
    """Seeds of one attempt: ``env_seed`` for ``env.reset(seed=...)`` (< 5 * 2**61, its bits
    above the low 61 name the stream) and ``noise_seed`` for ``np.random.default_rng`` (< 2**64)."""

    env_seed: int
    noise_seed: int


def layout_key(layout: str) -> int:
    """An injective non-negative integer for a layout string (its ASCII bytes, big-endian)."""
    return int.from_bytes(layout.encode("ascii"), "big")


def demo_seeds(root: int, stream: Stream, layout: str, index: int, attempt: int = 0) -> DemoSeeds:
    """The seeds of attempt ``attempt`` of demo (or episode) ``index`` of ``layout`` in ``stream``.

    Args:
        root: the user's seed (``--seed``), >= 0.
        stream: which stream (training demos, evaluation demos, evaluation episodes, DAgger).
        layout: the task's layout string as written (``Task.layout``).
        index: demo or episode index within the task, >= 0.
        attempt: retry number after unsuccessful attempts, >= 0.
    """
    if min(root, index, attempt) < 0:
        raise ValueError(f"seeds need root, index and attempt >= 0, got {root}, {index}, {attempt}")
    stream = Stream(stream)
    sequence = np.random.SeedSequence(
        root, spawn_key=(int(stream), layout_key(layout), index, attempt)
    )
    env_word, noise_word = (int(w) for w in sequence.generate_state(2, dtype=np.uint64))
    return DemoSeeds(env_seed=(int(stream) << _LOW_BITS) | (env_word & _LOW_MASK),
                     noise_seed=noise_word)


def stream_of(env_seed: int) -> Stream:
    """The stream an env seed made by ``demo_seeds`` belongs to."""
    if not 0 <= env_seed < len(Stream) << _LOW_BITS:
        raise ValueError(f"env seed {env_seed} is outside the streams' ranges")
    return Stream(env_seed >> _LOW_BITS)
