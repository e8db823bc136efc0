"""One way to run independent jobs in worker processes, each owning its own simulator.

``job_runner(workers, setup, args, work, close, backend=...)`` yields a function that maps a list
of jobs to an iterator of results in completion order. Backend ``"process"``: with one worker the
jobs run in this process; with more, in a spawn-context pool (no PyBullet state is ever shared or
forked) whose workers each call ``setup(*args, pooled=True)`` once and then ``work(state, job)``
per job. Backend ``"ray"``: ``workers`` Ray actors (on this machine or a Ray cluster) do the same,
one actor call per job. Demo generation and evaluation use it; their results depend only on the
job, never on the worker or the backend that ran it, so a job lost with its worker runs again.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import multiprocessing as mp
import signal
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")
Runner = Callable[[Iterable[Job]], Iterator[Result]]

#: Where the jobs run: ``process`` (this machine's spawn pool) or ``ray`` (Ray actors).
BACKENDS = ("process", "ray")
#: How to get Ray, named by the error raised without it.
RAY_INSTALL = "pip install 'imitate-oneshot[ray]'"
#: Restarts of a Ray actor whose process died, and retries of the job it was running (a job is
#: pure: its result depends only on the job, so running it again is safe).
RAY_RESTARTS = 3

logger = logging.getLogger(__name__)


def check_backend(backend: str, ray_address: str | None) -> None:
    """``ValueError`` for a backend not in ``BACKENDS``, a Ray address without the ``ray``
    backend, or the ``ray`` backend where Ray is not installed (before any work starts)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown --backend {backend!r}; choose {' or '.join(BACKENDS)}")
    if ray_address is not None and backend != "ray":
        raise ValueError(f"--ray-address {ray_address} needs --backend ray")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ValueError(f"--backend ray needs Ray: {RAY_INSTALL}")


def add_backend_options(parser: argparse.ArgumentParser, job: str) -> None:
    """Add ``--backend`` and ``--ray-address`` (destinations ``backend``, ``ray_address``) to a
    command whose workers each run one ``job`` (a demo, an episode) at a time."""
    parser.add_argument("--backend", choices=BACKENDS, default="process",
                        help=f"where the workers run: process (a spawn pool on this machine) or "
                        f"ray (Ray actors, here or on a Ray cluster, one call per {job}; needs "
                        f"{RAY_INSTALL}); both give the same results (default: process)")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="the Ray cluster for --backend ray: 'auto' joins the one running "
                        "here ('ray start'), HOST:PORT another (default: start a local Ray "
                        "instance with one CPU per worker)")


@contextlib.contextmanager
def job_runner(workers: int, setup: Callable[..., Any], args: tuple[Any, ...],
               work: Callable[[Any, Job], Result], close: Callable[[Any], None], *,
               backend: str = "process", ray_address: str | None = None) -> Iterator[Runner]:
    """Map jobs to results (completion order): in this process for 1 worker, else in a pool.

    ``setup(*args, pooled=...)`` builds a worker's state (``pooled`` False in this process, where
    it may for example keep torch's thread count); ``work(state, job)`` runs one job;
    ``close(state)`` releases the in-process state afterwards (pool workers exit with the pool).
    ``setup`` and ``work`` must be module-level functions (they are pickled to the workers).

    ``backend="ray"``: ``workers`` Ray actors, even for 1 worker, each holding
    ``setup(*args, pooled=True)``; this process still receives every result. ``ray_address``:
    None starts a local Ray instance of ``workers`` CPUs (shut down afterwards), ``"auto"`` joins
    the running cluster, any other string is Ray's address of one (``HOST:PORT``); when this
    process already initialised Ray, that instance is used and left running.
    """
    check_backend(backend, ray_address)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if backend == "ray":
        with _ray_runner(workers, setup, args, work, ray_address) as run:
            yield run
        return
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
    """Pool initializer: build this worker's state once. Ctrl-C reaches the whole process group;
    the worker ignores it and leaves it to the parent, which stops the pool (terminating its
    workers) instead of every worker printing a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _WORKER
    _WORKER = (setup(*args, pooled=True), work)


def _run_job(job: Any) -> Any:
    if _WORKER is None:
        raise RuntimeError("job_runner worker used before its setup ran")
    state, work = _WORKER
    return work(state, job)


# --- the Ray backend ---------------------------------------------------------------------------
def import_ray() -> Any:
    """The ``ray`` module; ``ValueError`` naming the extra to install when it is missing."""
    try:
        import ray
    except ImportError:
        raise ValueError(f"--backend ray needs Ray: {RAY_INSTALL}") from None
    return ray


class _RayWorker:
    """A Ray actor's body: one worker's state, built by its first job, and the function that
    runs a job.

    Every job carries ``shared_args``: [a reference to ``setup``'s arguments], one stored copy
    for all actors. The state is built on first use rather than in the constructor, so that an
    actor restarted after its process died builds it again from the job it retries (Ray keeps
    no constructor arguments for that, and warns about stored ones).
    """

    def __init__(self, setup: Callable[..., Any], work: Callable[[Any, Any], Any]) -> None:
        self.setup, self.work = setup, work
        self.state: Any = None
        self.ready = False

    def run(self, job: Any, shared_args: list[Any]) -> Any:
        if not self.ready:
            import ray

            self.state, self.ready = self.setup(*ray.get(shared_args[0]), pooled=True), True
        return self.work(self.state, job)


@contextlib.contextmanager
def _ray_runner(workers: int, setup: Callable[..., Any], args: tuple[Any, ...],
                work: Callable[[Any, Any], Any], address: str | None) -> Iterator[Runner]:
    """``workers`` actors fed by ``ray.util.ActorPool`` (each job goes to the next idle actor;
    results in completion order). An actor whose process dies restarts (``setup`` again) and
    runs the job it held again, up to ``RAY_RESTARTS`` times."""
    ray = import_ray()
    from ray.util import ActorPool

    started = _connect(ray, workers, address)
    actors: list[Any] = []
    try:
        actor_class = ray.remote(num_cpus=1, max_restarts=RAY_RESTARTS,
                                 max_task_retries=RAY_RESTARTS)(_RayWorker)
        shared_args = ray.put(args)  # one copy in the object store, however many actors
        actors = [actor_class.remote(setup, work) for _ in range(workers)]
        pool = ActorPool(actors)
        yield lambda jobs: pool.map_unordered(
            lambda actor, job: actor.run.remote(job, [shared_args]), jobs)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _connect(ray: Any, workers: int, address: str | None) -> bool:
    """Initialise Ray unless this process already did: a local instance of ``workers`` CPUs on
    127.0.0.1 for ``address`` None, else the cluster at ``address``. True when it initialised
    (the caller then shuts it down)."""
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address is None:
        logger.info("starting a local Ray instance with %d CPUs", workers)
        ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                 **quiet)
    else:
        _check_reachable(address)
        logger.info("joining the Ray cluster at %s", address)
        ray.init(address=address, **quiet)
    return True


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """``ValueError`` when ``address`` (``HOST:PORT``, or ``ray://HOST:PORT``) takes no TCP
    connection within ``timeout_s`` seconds: ``ray.init`` would retry it for minutes. ``auto``
    is left to Ray, which fails at once when no cluster runs here."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379), "
                         "ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise ValueError(f"--ray-address {address}: no Ray head answers there ({error}); start "
                         "one with 'ray start --head', or use --ray-address auto on a node of a "
                         "running cluster") from None
