"""Where the work of ``ncverify run`` and ``ncverify sweep`` runs: in this process (the default, no Dask needed) or
on Dask workers (``--workers N``: a local cluster of N worker processes on 127.0.0.1; ``--scheduler ADDRESS``: an
existing Dask scheduler, e.g. one started by dask-jobqueue on SLURM or PBS).

The work is a list of tasks, each a call ``fn(*args)`` of a module-level function of ncverify (so a worker imports
it by name: every worker needs the same ncverify installed). ``Executor.map`` yields ``(index, result)`` as tasks
complete; the caller orders the results by index, so the output never depends on which worker finished first.

Same seed, same results: a task's result depends only on its arguments (theorem ids, instances, seed, budget), never
on the process it ran in or on the other tasks. Two things make that hold on workers:

* every task, in-process or on a worker, runs in ``task_context``: one task at a time per process
  (``_TASK_LOCK``: the exact side sets mpmath's global precision, which threads would share) and torch on
  ``task_threads()`` intra-op threads (default 1, NCVERIFY_TASK_THREADS: processes give the parallelism). Thread
  counts matter for the last bits: a dense Hessian's eigenvalues and a solver's path change at 1e-16..1e-7
  relative between 1 and 2 threads (measured), so the in-process run uses the tasks' thread count too.
* theorems travel as ids (and a ``--theorems`` file as its text), results come back with the theorem objects
  detached; the caller re-attaches its own objects.

Faults: a worker that dies mid-task loses nothing; Dask's scheduler reruns its tasks on another worker (up to
``distributed.scheduler.allowed-failures`` times, default 3). A scheduler that cannot be reached, a cluster without
workers, or workers without ncverify give one-line errors (``UsageError``).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ncverify.proofs_checks.errors import UsageError

#: seconds to wait for a scheduler to answer and for at least one of its workers to connect
CONNECT_TIMEOUT = 15.0
#: torch intra-op threads of a task on a Dask worker (NCVERIFY_TASK_THREADS overrides)
TASK_THREADS_ENV = "NCVERIFY_TASK_THREADS"
#: the most local workers ``--workers`` starts (more would only oversubscribe one machine)
MAX_LOCAL_WORKERS = 256

DASK_MISSING = ("Dask is not installed: --workers and --scheduler need the optional extra, "
                "pip install 'ncverify[dask]' (or pip install 'dask[distributed]')")

_TASK_LOCK = threading.Lock()


def task_threads() -> int:
    """torch intra-op threads of one task on a worker: NCVERIFY_TASK_THREADS, default 1."""
    raw = os.environ.get(TASK_THREADS_ENV, "1")
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"{TASK_THREADS_ENV} must be an integer >= 1, got {raw!r}")
    return n


def check_workers(workers: Any, scheduler: Any) -> None:
    """UsageError unless at most one of ``workers`` (an integer 1..MAX_LOCAL_WORKERS) and ``scheduler`` (a non-empty
    address) is given."""
    if workers is not None and scheduler is not None:
        raise UsageError("give either --workers N (a local Dask cluster) or --scheduler ADDRESS (an existing one), "
                         "not both")
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_LOCAL_WORKERS:
            raise UsageError(f"--workers must be an integer from 1 to {MAX_LOCAL_WORKERS}, got {workers!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise UsageError(f"--scheduler must be a scheduler address such as tcp://10.0.0.5:8786, got {scheduler!r}")


def check_cluster_args(workers: Any, scheduler: Any) -> None:
    """``check_workers``, then ``require_dask`` when either flag is given: every cluster flag checked before any
    work."""
    check_workers(workers, scheduler)
    if workers is not None or scheduler is not None:
        require_dask()


def require_dask() -> None:
    """UsageError (one line, how to install) when dask.distributed cannot be imported."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise UsageError(DASK_MISSING) from exc


# ---------------------------------------------------------------------------------------------
# executors
# ---------------------------------------------------------------------------------------------
#: a task: a module-level function of ncverify and its arguments; in-process it also gets ``progress=``
Task = tuple[Callable[..., Any], tuple]


class InProcess:
    """Runs the tasks here, one after the other, in order; each function also receives ``progress`` (a callable
    taking one message: its inner steps)."""

    description = "in-process"

    def map(self, tasks: Sequence[Task], *, names: Sequence[str] | None = None,
            progress: Callable[[int, str], None] | None = None) -> Iterator[tuple[int, Any]]:
        for i, (fn, args) in enumerate(tasks):
            inner = None if progress is None else (lambda msg, i=i: progress(i, msg))
            if inner is not None and names is not None:
                inner(names[i])
            with task_context():
                res = fn(*args, progress=inner)
            yield i, res


class DaskExecutor:
    """Submits every task to a Dask cluster at once and yields results as they complete (``as_completed``); a task
    that raises re-raises here (its exception type kept) and cancels the rest."""

    def __init__(self, client: Any, description: str) -> None:
        self.client = client
        self.description = description

    def map(self, tasks: Sequence[Task], *, names: Sequence[str] | None = None,
            progress: Callable[[int, str], None] | None = None) -> Iterator[tuple[int, Any]]:
        """``names`` and ``progress`` (a task's inner steps) are not used: the caller reports completions."""
        from distributed import as_completed

        tag = uuid.uuid4().hex[:8]  # unique keys: a shared scheduler never mixes two runs' results
        futures = [self.client.submit(_on_worker, fn, *args, key=f"ncverify-{fn.__name__}-{i}-{tag}", pure=False)
                   for i, (fn, args) in enumerate(tasks)]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in as_completed(futures):
                i = index[fut.key]
                yield i, fut.result()
        finally:
            self.client.cancel([f for f in futures if not f.done()])


def _on_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """A task on a Dask worker (``task_context``)."""
    with task_context():
        return fn(*args)


@contextmanager
def task_context() -> Iterator[None]:
    """Where every task runs, in-process or on a worker: one task at a time per process (``_TASK_LOCK``) and torch
    on ``task_threads()`` intra-op threads (restored afterwards). The same thread count everywhere is what makes a
    task's numbers identical wherever it runs: LAPACK's eigensolvers and torch's larger kernels split their work by
    thread count, which changes the last bits of a Hessian's eigenvalues and of a solver's path."""
    import torch

    with _TASK_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(task_threads())
        try:
            yield
        finally:
            torch.set_num_threads(before)


def _worker_version() -> str:
    import ncverify

    return ncverify.__version__


@contextmanager
def executor(workers: int | None = None, scheduler: str | None = None,
             say: Callable[[str], None] | None = None) -> Iterator[InProcess | DaskExecutor]:
    """The executor for ``--workers`` / ``--scheduler`` (neither: ``InProcess``). A local cluster listens on
    127.0.0.1 only and is shut down on exit; a client of an existing scheduler is closed on exit (the cluster stays).
    ``say``: one-line status messages (cluster started, workers found)."""
    check_cluster_args(workers, scheduler)
    if workers is None and scheduler is None:
        yield InProcess()
        return
    import logging

    from distributed import Client, LocalCluster

    tell = say or (lambda msg: None)
    cluster = None
    if workers is not None:
        tell(f"starting a local Dask cluster: {workers} worker processes on 127.0.0.1")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.ERROR)
        try:
            client = Client(cluster, timeout=CONNECT_TIMEOUT)
        except BaseException:
            cluster.close()
            raise
        where = f"local Dask cluster ({workers} workers)"
    else:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT:g} s "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
        where = f"Dask scheduler {scheduler}"
    try:
        _check_cluster(client, where)
        tell(f"running on the {where}: {len(client.scheduler_info().get('workers', {}))} workers")
        yield DaskExecutor(client, where)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_cluster(client: Any, where: str) -> None:
    """UsageError when the cluster has no worker within CONNECT_TIMEOUT or a worker runs another ncverify."""
    import ncverify

    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    except (TimeoutError, OSError) as exc:
        raise UsageError(f"the {where} has no workers (waited {CONNECT_TIMEOUT:g} s): start some, e.g. "
                         f"`dask worker ADDRESS --nthreads 1`") from exc
    try:
        versions = client.run(_worker_version)
    except Exception as exc:  # a worker without ncverify cannot unpickle the function
        raise UsageError(f"the workers of the {where} cannot run ncverify ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:120]}): install the same ncverify on every worker") from None
    other = {addr: v for addr, v in versions.items() if v != ncverify.__version__}
    if other:
        addr, v = next(iter(other.items()))
        raise UsageError(f"worker {addr} runs ncverify {v}, this client {ncverify.__version__}: install the same "
                         "version on every worker")


#: the keys of results.json and sweep.json whose values depend on the machine's speed or on where the work ran
TIMING_KEYS = frozenset({"seconds", "created", "command", "executor", "lemma_seconds", "commit", "commit_dirty",
                         "resumed", "computed", "figure"})


def without_timings(data: Any) -> Any:
    """``data`` (a results.json or sweep.json structure) without ``TIMING_KEYS`` at any depth: what must be equal
    between two runs with the same settings, wherever they ran."""
    if isinstance(data, dict):
        return {k: without_timings(v) for k, v in data.items() if k not in TIMING_KEYS}
    if isinstance(data, list):
        return [without_timings(v) for v in data]
    return data


# ---------------------------------------------------------------------------------------------
# theorems travel as ids (a user's --theorems file as its text)
# ---------------------------------------------------------------------------------------------
_LOADED: dict[tuple[str, str], dict[str, Any]] = {}  # (path, sha256 of the text) -> {id: Theorem}, per process


def theorems_source(path: str | None) -> tuple[str, str] | None:
    """What a task needs to load a ``--theorems`` file on a worker: (path, text); None without a file."""
    if not path:
        return None
    return str(path), Path(path).read_text()


def remember_loaded(source: tuple[str, str] | None, theorems: Sequence[Any]) -> None:
    """Register theorems this process already loaded from ``source``, so in-process tasks use these objects."""
    if source is not None:
        _LOADED[(source[0], _sha(source[1]))] = {t.id: t for t in theorems}


def resolve_theorem(theorem_id: str, source: tuple[str, str] | None) -> Any:
    """The ``Theorem`` with this id: from the shipped catalogue, or from the --theorems file ``source`` (loaded once
    per process; on a worker without the file, from a private copy of its text)."""
    from ncverify.proofs_checks.catalogue import MUTANTS, THEOREMS, by_id, load_theorems

    if source is None:
        return by_id(theorem_id, THEOREMS + MUTANTS)
    path, text = source
    key = (path, _sha(text))
    if key not in _LOADED:
        p = Path(path)
        if not (p.is_file() and p.read_text() == text):
            folder = Path(tempfile.mkdtemp(prefix="ncverify-theorems-"))
            p = folder / Path(path).name
            p.write_text(text)
        _LOADED[key] = {t.id: t for t in load_theorems(str(p))}
    reg = _LOADED[key]
    if theorem_id in reg:
        return reg[theorem_id]
    return by_id(theorem_id, THEOREMS + MUTANTS)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
