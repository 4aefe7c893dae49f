"""Where candidates train: in this process, in joblib (loky) workers, or on Dask.

Every backend runs the same pure function, :func:`hpmkd.evaluate.train_candidate`, on the
same :class:`~hpmkd.evaluate.TrainingContext`; results come back in the order of the
specs. Inside workers BLAS and OpenMP pools are limited to one thread (students already
pin LightGBM to ``n_jobs=1``): two cores oversubscribed by nested threads made small
LightGBM fits many times slower here.

On loky, every job is its own task and results come back as they finish, so a stop
request (:mod:`hpmkd.stop`) is noticed within :data:`~hpmkd.stop.POLL_S` seconds: the wave
returns the finished jobs (:class:`~hpmkd.stop.WaveInterrupted`) and the busy workers are
killed, so they do not burn the cores while the run finishes. The training context (the
rows, megabytes) is written once per run to a temporary file that each worker reads when
a wave first needs it (:func:`_worker_context`; a worker keeps one context), instead of
being pickled into every task. The workers run without loky's memory-leak restarts
(:func:`_init_worker`). A fit can also be handed to a worker in the background
(:meth:`Executor.submit_ahead`) while this process trains one of its own: the run's
session uses it for fits it will most likely ask for next
(:meth:`hpmkd.engine.session.RunSession.ahead_in_background`).
"""

from __future__ import annotations

import gc
import os
import pickle
import shutil
import tempfile
import weakref
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hpmkd.errors import RunCancelled
from hpmkd.evaluate import CandidateResult, TrainingContext, train_candidate
from hpmkd.extras import require
from hpmkd.native_threads import lightgbm_threads_for, one_thread
from hpmkd.stop import POLL_S, WaveInterrupted, active_request
from hpmkd.students import StudentSpec

#: Rows from which the command line and the app turn parallel training on by themselves
#: (``HPMConfig.use_parallel`` itself stays off by default, as the specification says).
#: Measured with bench/auto_parallel.py on a quiet machine, two runs per size, off against
#: on (docs/BENCHMARKS.md section 8, "Where parallel training pays"): at 50,000 rows the
#: workers did not pay (nyc_flights_delay 8.7 -> 9.9 s both times, us_census_fertility
#: 7.4 -> 7.1 and 7.5 s), at 100,000 they did on census (13.4 -> 11.4 s) and broke even on
#: nyc (10.5-10.7 -> 10.3-10.7 s); on the whole tables they are needed for <= 3x the
#: teacher fit.
AUTO_PARALLEL_MIN_ROWS = 100_000

#: Values (rows x features) above which the automatic choice stays sequential: every
#: worker process reads its own copy of the training rows and encodes it, so the workers
#: add memory in proportion to the table. Measured with bench/scale.py (the run's process
#: and its two workers together, sampled; docs/BENCHMARKS.md section 8, "Memory and the
#: automatic choice"): 2,815 MiB on 500,000 x 50 (25 million values), just within 3 GB
#: (2,861 MiB), and 4,319 MiB on 1,000,000 x 50 (2,422 MiB without the workers). The bound
#: sits below 25 million because the sampler can miss peaks shorter than 0.1 s.
AUTO_PARALLEL_MAX_VALUES = 20_000_000


def auto_parallel(
    n_rows: int, n_features: int, n_jobs: int, cores: int | None = None
) -> tuple[bool, str]:
    """Whether a run on a table of ``n_rows`` x ``n_features`` should train in parallel.

    Parallel training pays once candidate fits take longer than starting the workers and
    shipping the rows to them; :data:`AUTO_PARALLEL_MIN_ROWS` is where that is expected
    (measured, see its comment). It needs at least two workers and two cores, and a
    table of at most :data:`AUTO_PARALLEL_MAX_VALUES` values: above, the workers' copies
    of the rows would take the run's memory beyond 3 GB, so one process trains (asking
    for ``use_parallel`` explicitly still uses the workers).

    Parameters
    ----------
    n_rows : int
        Rows of the table (before the split).
    n_features : int
        Feature columns of the table.
    n_jobs : int
        Worker processes the run would use (``HPMConfig.n_jobs``).
    cores : int, optional
        CPU cores this process may use; default: those of the machine's affinity mask.

    Returns
    -------
    (bool, str)
        The choice and a sentence saying why.
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1
        )
    workers = min(n_jobs, cores)
    if workers < 2:
        return False, (
            f"parallel training off (auto): {workers} usable worker(s) "
            f"(n_jobs={n_jobs}, {cores} core(s))"
        )
    if n_rows < AUTO_PARALLEL_MIN_ROWS:
        return False, (
            f"parallel training off (auto): {n_rows:,} rows, below {AUTO_PARALLEL_MIN_ROWS:,}"
        )
    values = n_rows * n_features
    if values > AUTO_PARALLEL_MAX_VALUES:
        return False, (
            f"parallel training off (auto): {n_rows:,} rows x {n_features:,} features = "
            f"{values:,} values, above {AUTO_PARALLEL_MAX_VALUES:,}: each worker process "
            "would hold its own copy of the rows and take the run's memory beyond 3 GB"
        )
    return True, (
        f"parallel training on (auto): {n_rows:,} rows, at least {AUTO_PARALLEL_MIN_ROWS:,}, "
        f"and {values:,} values, at most {AUTO_PARALLEL_MAX_VALUES:,}; "
        f"{workers} worker processes"
    )


@dataclass(frozen=True)
class Job:
    """One candidate to train: its spec and the keyword arguments of ``train_candidate``."""

    spec: StudentSpec
    kwargs: dict[str, Any] = field(default_factory=dict)


def _train_jobs(jobs: list[Job], ctx: TrainingContext) -> list[CandidateResult]:
    ctx = replace(ctx, n_threads=1) if ctx.n_threads != 1 else ctx
    with one_thread():
        return [train_candidate(job.spec, ctx, **job.kwargs) for job in jobs]


#: Thread pools of the workers' libraries start with one thread (as joblib's loky backend
#: sets them for n_jobs = cores); threadpoolctl limits them again around every fit.
_WORKER_ENV = {
    var: "1"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
                "NUMBA_NUM_THREADS")
}


# In a loky worker: the training contexts read from their files, newest last (a run
# alternates between at most a few: the halving subsample, all rows, a chain's subsample,
# the hard-label twin's rows).
_WORKER_CONTEXTS: list[tuple[str, TrainingContext]] = []
#: Contexts a worker keeps. One: a context and the encodings of its rows (the memos of
#: hpmkd.students and hpmkd.evaluate die with its frames) go before the next one is read,
#: so a worker never holds two copies of the rows (on 1,000,000 x 50 a context is about
#: 390 MB, its encoded training rows 256 MB more); a context needed again is read again.
_WORKER_CONTEXTS_KEEP = 1


def _worker_context(path: str) -> TrainingContext:
    """The context stored at ``path``, read once per worker process while it is the
    newest (see :data:`_WORKER_CONTEXTS_KEEP`)."""
    # Found in a generator: a for loop's variable would keep the last context alive
    # through the collection and the reading below (two contexts at the peak).
    kept = next((ctx for stored, ctx in _WORKER_CONTEXTS if stored == path), None)
    if kept is not None:
        return kept
    # Drop the oldest before reading, not after: the peak is then one context fewer.
    del _WORKER_CONTEXTS[: max(0, len(_WORKER_CONTEXTS) - _WORKER_CONTEXTS_KEEP + 1)]
    gc.unfreeze()  # what was frozen with the dropped context (below) is collectable again
    gc.collect()  # the encodings memos hold their frames weakly: free them now
    with open(path, "rb") as handle:
        ctx = pickle.load(handle)  # written by this run's Executor (_context_file)
    ctx = replace(ctx, X_train=_shared_dtypes(ctx.X_train), X_val=_shared_dtypes(ctx.X_val))
    _WORKER_CONTEXTS.append((path, ctx))
    # loky's worker collects garbage about once a second between jobs (_init_worker), and
    # every collection visits each element of the context's object (text) columns: 50-60
    # ms a collection on us_census_fertility, about 8% of a worker's CPU (py-spy). The
    # context lives until the next one replaces it, so it is frozen: moved out of the
    # collector's sight, together with whatever else is alive now (imported modules).
    # Memory is freed by reference counting as before; only reference cycles among the
    # frozen objects wait for the unfreeze above.
    gc.freeze()
    return ctx


def _shared_dtypes(frame: Any) -> Any:
    """``frame`` with its object columns on numpy's own object dtype.

    An object array read back from a pickle has a dtype object of its own, equal to
    numpy's shared one but not the same object; the encoders of a student fitted on it
    kept both, and the student pickled a few bytes bigger (34 on nyc_flights_delay) than
    the same student fitted in the run's process. A copy of the column (the pointers, not
    the strings) takes numpy's shared dtype again.
    """
    import pandas as pd

    columns = [c for c in frame.columns if frame[c].dtype == object]
    if not columns:
        return frame
    out = frame.copy(deep=False)
    for c in columns:
        out[c] = pd.Series(frame[c].to_numpy().astype(object), index=frame.index, dtype=object)
    return out


def _init_worker() -> None:
    """Turn loky's memory-leak check off in this worker (runs once, when it starts).

    loky measures a worker's memory after its first job and ends the worker once it has
    grown by more than 300 MB (``_MAX_MEMORY_LEAK_SIZE``) since. Here that growth is no
    leak: a later wave hands the worker a larger training context (all rows after the
    halving subsample), so on large tables loky ended and restarted workers again and
    again, each new one importing the libraries and reading the context once more (up to
    five worker processes per 1,000,000-row run). What a worker keeps is bounded by design
    (:data:`_WORKER_CONTEXTS_KEEP` contexts, the encodings memo of
    :mod:`hpmkd.evaluate`); without the check loky still collects garbage (``gc.collect``)
    at most once a second between jobs (cheap: the context is frozen, see
    :func:`_worker_context`).
    """
    from joblib.externals.loky import process_executor

    # A module global read by loky's worker loop at every job (loky 3.x of joblib 1.x);
    # tests/test_parallel.py checks that it is still there and off in our workers.
    if hasattr(process_executor, "_USE_PSUTIL"):
        process_executor._USE_PSUTIL = False


def _train_in_worker(job: Job, path: str) -> tuple[CandidateResult, int]:
    """One job in a loky worker; also returns the worker's pid (tests check it is gone)."""
    return _train_jobs([job], _worker_context(path))[0], os.getpid()


def _started() -> int:
    """Nothing: handed to each loky worker when the pool starts, so that it imports this
    module (and with it scikit-learn, pandas, LightGBM) before the first wave needs it."""
    return os.getpid()


def _usable_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Executor:
    """Run batches of :class:`Job` on one backend.

    Parameters
    ----------
    backend : {"sequential", "loky", "dask"}
    n_jobs : int
        Worker processes for loky (Dask uses its cluster's workers).
    scheduler : str, optional
        Dask scheduler address (``tcp://host:port``); required for ``dask``.
    """

    def __init__(self, backend: str = "sequential", n_jobs: int = 1, scheduler: str | None = None):
        self.backend = backend
        self.n_jobs = max(1, int(n_jobs))
        self.scheduler = scheduler
        self._client = None
        self._ctx_future = None
        self._ctx_id: int | None = None
        # loky: the context files of this run (the context is kept so its id stays its own).
        self._ctx_dir: Path | None = None
        self._ctx_files: dict[int, tuple[TrainingContext, str]] = {}
        self._pool: Any = None
        # Fits handed to the workers in the background (submit_ahead), not yet collected.
        self._background: set[Any] = set()
        #: Pids of the loky workers that trained the last wave (for tests and diagnostics).
        self.worker_pids: set[int] = set()

    @classmethod
    def from_config(cls, config: Any) -> Executor:
        """The backend a config asks for."""
        if not config.use_parallel:
            return cls("sequential", 1)
        if config.dask_scheduler:
            require("distributed", "Training on a Dask cluster (dask_scheduler)")
            return cls("dask", config.n_jobs, config.dask_scheduler)
        return cls("loky", config.n_jobs)

    @property
    def in_process_threads(self) -> int:
        """LightGBM threads for the fits the run trains in its own process.

        With loky workers those fits (the chain, the capacity climb, single-job waves)
        run while the workers wait for the next wave, so the cores the workers use are
        free: they get as many threads. Sequential runs keep one thread (the leakage
        check's thread uses the other core, and every result stays exactly as before);
        Dask workers are elsewhere, so this process's cores are not theirs to count.
        A run started in a thread that shares its process with other runs (the app's
        jobs; :func:`hpmkd.native_threads.shared_process`) keeps one thread: LightGBM's
        thread count is process-wide, and two counts at once can crash the process.
        """
        if self.backend != "loky":
            return 1
        return lightgbm_threads_for(max(1, min(self.n_jobs, _usable_cores())))

    def describe(self) -> dict[str, Any]:
        """Plain-data description for the run record."""
        out: dict[str, Any] = {"backend": self.backend, "n_jobs": self.n_jobs}
        if self.backend == "dask":
            out["scheduler"] = self.scheduler
            if self._client is not None:
                out["workers"] = len(self._client.scheduler_info().get("workers", {}))
        return out

    @property
    def batch_size(self) -> int:
        """How many jobs to hand out at once (a wave: feedback is used between waves)."""
        if self.backend == "sequential":
            return 1
        if self.backend == "dask" and self._client is not None:
            workers = len(self._client.scheduler_info().get("workers", {}))
            return max(2, 2 * workers)
        return 2 * self.n_jobs

    def run(self, jobs: list[Job], ctx: TrainingContext) -> list[CandidateResult]:
        """Train ``jobs`` and return their results in order.

        Raises
        ------
        WaveInterrupted
            A stop that keeps the best so far came during a loky wave: it carries the
            jobs that finished; the others were dropped and their workers killed.
        FitInterrupted, RunCancelled
            A stop in a fit in this process (see :func:`hpmkd.stop.abandonable`), or a
            discarding stop during a loky wave.
        """
        if not jobs:
            return []
        if self.backend == "sequential" or (len(jobs) == 1 and self.backend == "loky"):
            return [train_candidate(job.spec, ctx, **job.kwargs) for job in jobs]
        if self.backend == "loky":
            return self._run_loky(jobs, ctx)
        return self._run_dask(jobs, ctx)

    def _loky_pool(self) -> Any:
        if self._pool is None:
            from joblib.externals.loky import ProcessPoolExecutor

            # The run's own workers (not loky's process-wide reusable pool): killing them
            # on a stop must not touch another run's (two app sessions in one process).
            self._pool = ProcessPoolExecutor(
                max_workers=self.n_jobs, env=dict(_WORKER_ENV), initializer=_init_worker
            )
        return self._pool

    def start(self) -> None:
        """Start the loky workers now, in the background (nothing on other backends).

        A worker spends about a CPU second importing the libraries before its first fit
        (docs/BENCHMARKS.md section 8, "Less CPU outside the fits"); started when the run
        starts, that overlaps the run's own set-up instead of delaying its first wave.
        """
        if self.backend != "loky":
            return
        pool = self._loky_pool()
        # Counted like background fits, so the first wave's hand-out leaves them room in
        # loky's call queue.
        self._background.update(pool.submit(_started) for _ in range(self.n_jobs))

    def background_slots(self) -> int:
        """Workers free for :meth:`submit_ahead`: with loky, one fewer than the workers
        (this process's own fit keeps about a core busy), less the background fits not
        yet finished; 0 on other backends."""
        if self.backend != "loky":
            return 0
        self._background = {f for f in self._background if not f.done()}
        return max(0, self.n_jobs - 1 - len(self._background))

    def submit_ahead(self, job: Job, ctx: TrainingContext) -> Any:
        """Hand ``job`` to a loky worker in the background, while this process goes on
        (with :meth:`background_slots` free); returns its future, whose result is
        ``(CandidateResult, pid)``. A stop that kills the workers fails it
        (``BrokenProcessPool``): the caller then trains the job itself if still needed.
        """
        if self.backend != "loky":
            raise ValueError("background fits need the loky backend")
        future = self._loky_pool().submit(_train_in_worker, job, self._context_file(ctx))
        self._background.add(future)
        return future

    def _run_loky(self, jobs: list[Job], ctx: TrainingContext) -> list[CandidateResult]:
        path = self._context_file(ctx)
        pool = self._loky_pool()
        # At most two jobs per worker are handed to loky at a time, the next when one
        # ends: so many fit in loky's call queue (2 x workers + 1), a worker finds its next
        # job waiting, and loky keeps none in a queue of its own. Killing the workers while
        # it did made its manager thread fail on them (a KeyError traceback on stderr;
        # loky 3.6.0 of joblib 1.6.0).
        todo = list(enumerate(jobs))
        futures: dict[Any, int] = {}
        pending: set[Any] = set()

        def hand_out() -> None:
            # Background fits still running take their places in loky's call queue too.
            self._background = {f for f in self._background if not f.done()}
            while todo and (
                not pending or len(pending) + len(self._background) < 2 * self.n_jobs
            ):
                i, job = todo.pop(0)
                future = pool.submit(_train_in_worker, job, path)
                futures[future] = i
                pending.add(future)

        request = active_request()
        finished: dict[int, CandidateResult] = {}
        self.worker_pids = set()
        hand_out()
        while pending:
            done, still = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
            pending.clear()
            pending.update(still)
            try:
                for future in done:
                    result, pid = future.result()
                    finished[futures[future]] = result
                    self.worker_pids.add(pid)
            except BaseException:
                self._kill_workers()  # a failed job: the wave is lost, as with joblib
                raise
            if (pending or todo) and request is not None and request.requested:
                # Jobs not handed out are dropped. Busy workers are killed rather than
                # left to finish fits nobody will read; a later wave starts fresh ones.
                if pending:
                    self._kill_workers()
                if request.discard:
                    raise RunCancelled(request.reason)
                raise WaveInterrupted(request.reason, finished)
            hand_out()
        return [finished[i] for i in range(len(jobs))]

    def _kill_workers(self) -> None:
        """Stop the loky workers now, whatever they are doing, and wait for them to end."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, kill_workers=True)
            self._pool = None
        self._background = set()  # failed with the workers (BrokenProcessPool)

    def _context_file(self, ctx: TrainingContext) -> str:
        """The file holding ``ctx`` for the workers, written on its first wave."""
        entry = self._ctx_files.get(id(ctx))
        if entry is not None and entry[0] is ctx:
            return entry[1]
        if self._ctx_dir is None:
            self._ctx_dir = Path(tempfile.mkdtemp(prefix="hpmkd-contexts-"))
            # Removed by close(), or when the executor is collected, or at exit.
            weakref.finalize(self, shutil.rmtree, str(self._ctx_dir), True)
        path = self._ctx_dir / f"context-{len(self._ctx_files)}.pkl"
        with open(path, "wb") as handle:
            pickle.dump(ctx, handle, protocol=pickle.HIGHEST_PROTOCOL)
        self._ctx_files[id(ctx)] = (ctx, str(path))
        return str(path)

    def _run_dask(self, jobs: list[Job], ctx: TrainingContext) -> list[CandidateResult]:
        from distributed import Client

        if self._client is None:
            self._client = Client(self.scheduler, set_as_default=False)
        if self._ctx_id != id(ctx):
            # Ship the data once per context, not once per candidate.
            self._ctx_future = self._client.scatter(ctx, broadcast=True)
            self._ctx_id = id(ctx)
        futures = [
            self._client.submit(_train_jobs, [job], self._ctx_future, pure=False) for job in jobs
        ]
        return [part[0] for part in self._client.gather(futures)]

    def close(self) -> None:
        """End the loky workers and remove the context files; release the Dask client
        (the cluster itself keeps running)."""
        self._kill_workers()  # idle by now (every wave has returned)
        if self._ctx_dir is not None:
            shutil.rmtree(self._ctx_dir, ignore_errors=True)
            self._ctx_dir = None
            self._ctx_files = {}
        if self._client is not None:
            self._client.close()
            self._client = None
            self._ctx_future = None
            self._ctx_id = None
