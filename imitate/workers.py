"""One way to run independent jobs in worker processes, each owning its own simulator.

``job_runner(workers, setup, args, work, close)`` yields a function that maps a list of jobs to an
iterator of results in completion order. With one worker the jobs run in this process; with more,
in a spawn-context pool (no PyBullet state is ever shared or forked) whose workers each call
``setup(*args, pooled=True)`` once and then ``work(state, job)`` per job. Demo generation and
evaluation use it; their results depend only on the job, never on the worker that ran it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")
Runner = Callable[[Iterable[Job]], Iterator[Result]]


@contextlib.contextmanager
def job_runner(workers: int, setup: Callable[..., Any], args: tuple[Any, ...],
               work: Callable[[Any, Job], Result], close: Callable[[Any], None]
               ) -> Iterator[Runner]:
    """Map jobs to results (completion order): in this process for 1 worker, else in a pool.

    ``setup(*args, pooled=...)`` builds a worker's state (``pooled`` False in this process, where
    it may for example keep torch's thread count); ``work(state, job)`` runs one job;
    ``close(state)`` releases the in-process state afterwards (pool workers exit with the pool).
    ``setup`` and ``work`` must be module-level functions (they are pickled to the workers).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1:
        state = setup(*args, pooled=False)
        try:
            yield lambda jobs: (work(state, job) for job in jobs)
        finally:
            close(state)
        return
    # ``args`` first: a worker then reads them (a checkpoint's bytes, say) at once, so that this
    # process is not left blocked writing to it while it imports ``setup``'s module.
    with mp.get_context("spawn").Pool(workers, initializer=_start_worker,
                                      initargs=(args, setup, work)) as pool:
        yield lambda jobs: pool.imap_unordered(_run_job, jobs, chunksize=1)


_WORKER: tuple[Any, Callable[[Any, Any], Any]] | None = None


def _start_worker(args: tuple[Any, ...], setup: Callable[..., Any],
                  work: Callable[[Any, Any], Any]) -> None:
    """Pool initializer: build this worker's state once."""
    global _WORKER
    _WORKER = (setup(*args, pooled=True), work)


def _run_job(job: Any) -> Any:
    if _WORKER is None:
        raise RuntimeError("job_runner worker used before its setup ran")
    state, work = _WORKER
    return work(state, job)
