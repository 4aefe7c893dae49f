"""Teacher model files are loaded and scored in a separate, resource-limited process.

scikit-learn, libsvm and LightGBM trust the fitted arrays they are given, so a crafted
(or merely corrupt) model file can crash, hang or exhaust the process that uses it, even
after the restricted loader (:mod:`hpmkd.safe_load`) admitted only known classes and
checked their fitted state. So hpmkd never loads a teacher *file* in its own process:

- :func:`score_teacher_file` (and :func:`run_teacher_file`, which also returns what
  the run reports about the teacher) writes the job - the model file or uploaded bytes,
  the rows, the class order - into a fresh private folder, and a child process loads
  the model (restricted, or plainly for a trusted file), forces ``n_jobs`` to 1, computes
  the probabilities and writes them as a ``.npy`` array and a small JSON record;
- :func:`check_teacher_file` does the same up to the load (the app's upload check).

The child runs with limits (:class:`hpmkd.settings.TeacherLimits`, from
``HPMKD_UPLOAD_LIMIT_MB`` and ``HPMKD_TEACHER_*``): address space, CPU time, open files,
file size, no core dumps, one thread for every numeric library, a working directory of
its own; this process enforces wall time and the thread count and kills it past them. A
crash, hang or bomb becomes one :class:`~hpmkd.errors.TeacherProcessError` (an
``HPMKDInputError``) saying what happened and which setting applies; nothing the child
writes is unpickled here (``np.load(allow_pickle=False)`` of an array of the expected
shape, and JSON).

Children are forked from a helper process ("zygote") started once per process with a
minimal environment, which imports the libraries and never touches a model itself: each
job gets a pristine copy of it in ~50 ms instead of a new interpreter, and nothing of the
server (threads, sessions, open files) is inherited. If the helper cannot start, each job
starts its own interpreter (``python -m hpmkd._teacher_child run``).

The isolation contains crashes, hangs and resource bombs; it is not a sandbox for
arbitrary code (a trusted file runs its code in the child as the same user). The
restricted loader keeps code out of untrusted files.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from hpmkd.errors import HPMKDInputError, TeacherProcessError
from hpmkd.safe_load.loader import SUPPORTED_EXTENSIONS
from hpmkd.settings import TeacherLimits

__all__ = [
    "TeacherFileInfo",
    "TeacherScores",
    "check_teacher_file",
    "run_teacher_file",
    "score_teacher_file",
]

#: The child module (``python -m``); it is never imported here.
CHILD_MODULE: Final = "hpmkd._teacher_child"
#: Exit codes of the child besides 0 (see :mod:`hpmkd._teacher_child`).
EXIT_REFUSED, EXIT_MEMORY, EXIT_FAILED = 3, 4, 5
#: How long the helper process may take to import the libraries.
_STARTUP_S: Final = 120.0
#: How often the parent looks at a running child (wall time, thread count).
_POLL_S: Final = 0.05
#: The most a child's JSON record may hold.
_MAX_RECORD_BYTES: Final = 1024 * 1024
_THREAD_VARIABLES: Final = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS", "NUMBA_NUM_THREADS",
)
_KEPT_VARIABLES: Final = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
_SIGNALS: Final = {
    signal.SIGSEGV: "crashed with a segmentation fault (SIGSEGV, signal 11): native code read "
    "or wrote memory it does not own",
    signal.SIGBUS: "crashed with a bus error (SIGBUS)",
    signal.SIGILL: "crashed on an illegal instruction (SIGILL)",
    signal.SIGFPE: "crashed on an arithmetic fault (SIGFPE), such as a division by zero in "
    "native code",
    signal.SIGABRT: "was aborted by native code (SIGABRT, signal 6): a library met a model it "
    "cannot handle, or ran out of the memory the process may use",
}


@dataclass(frozen=True)
class TeacherFileInfo:
    """What the isolated load of a teacher file found (plain data).

    Attributes
    ----------
    family : str
        Class of the loaded model (``"Pipeline"``, ``"Booster"``, ...).
    n_features : int or None
        Columns it reads, when it records that.
    feature_names : list of str or None
        Column names it records.
    classes : list of str or None
        Its class labels as text, when it records them.
    """

    family: str
    n_features: int | None
    feature_names: list[str] | None
    classes: list[str] | None


@dataclass(frozen=True)
class TeacherScores:
    """A teacher file's probabilities and what was measured while computing them.

    Attributes
    ----------
    proba : ndarray of shape (n_rows, n_classes)
        In the order of the ``classes`` asked for, checked (finite, rows sum to 1).
    columns : list of str
        The columns of ``X`` it read.
    family : str
        Class of the model.
    size_bytes : int
        Size of the model pickled (as students are measured), -1 if unknown.
    latency_ms_1k : float
        Milliseconds to score 1,000 rows on one thread (rows of ``X`` cycled), measured
        in the isolated process; NaN if not measured.
    """

    proba: np.ndarray
    columns: list[str]
    family: str
    size_bytes: int
    latency_ms_1k: float


# --------------------------------------------------------------------------- public API
def score_teacher_file(
    source: str | os.PathLike[str] | bytes,
    X: pd.DataFrame,
    feature_columns: Sequence[str],
    classes: Sequence[Any],
    limits: TeacherLimits | None = None,
    trusted: bool = False,
    *,
    filename: str | None = None,
) -> np.ndarray:
    """Probabilities of a teacher model file on the rows of ``X``, computed in isolation.

    Parameters
    ----------
    source : path or bytes
        The model file, or its content (an upload; then ``filename`` gives the format).
    X : DataFrame
        The rows. The teacher reads the columns it records the names of, else
        ``feature_columns``.
    feature_columns : sequence of str
        Columns to use when the model records no feature names.
    classes : sequence
        The target's classes; the result's columns are in this order.
    limits : TeacherLimits, optional
        Default :meth:`TeacherLimits.from_env`.
    trusted : bool, default False
        Load pickle/joblib/skops plainly, running any code in the file (in the child).
    filename : str, optional
        Name of an uploaded file (its extension picks the format); shown in messages.

    Returns
    -------
    ndarray of shape (len(X), len(classes))

    Raises
    ------
    HPMKDInputError
        The file was refused or is unreadable, it is not a classifier, it does not fit
        the data, or (:class:`~hpmkd.errors.TeacherProcessError`) it crashed, hung or
        went over a limit; the message says which and what to do.
    """
    return run_teacher_file(
        source, X, feature_columns, classes, limits, trusted=trusted, filename=filename,
        measure=False,
    ).proba


def run_teacher_file(
    source: str | os.PathLike[str] | bytes,
    X: pd.DataFrame,
    feature_columns: Sequence[str],
    classes: Sequence[Any],
    limits: TeacherLimits | None = None,
    *,
    trusted: bool = False,
    filename: str | None = None,
    name: str | None = None,
    measure: bool = True,
    _checks: bool = True,
) -> TeacherScores:
    """:func:`score_teacher_file`, also returning the columns read, the model's class and
    its size and latency measured in the isolated process.

    Parameters
    ----------
    source, X, feature_columns, classes, limits, trusted, filename
        As for :func:`score_teacher_file`.
    name : str, optional
        The teacher's name in messages (default: the file name).
    measure : bool, default True
        Measure size and latency too.
    _checks : bool, default True
        Tests only: ``False`` skips the fitted-state checks *inside the child*, to show
        that the child contains what they would refuse.

    Returns
    -------
    TeacherScores
    """
    limits = TeacherLimits.from_env() if limits is None else limits
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a DataFrame, not {type(X).__name__}")
    classes = list(classes)
    with _Job(source, filename, limits) as job:
        record = job.run(
            {
                "mode": "score",
                "trusted": bool(trusted),
                "checks": bool(_checks),
                "frame": X.reset_index(drop=True),
                "feature_columns": [str(c) for c in feature_columns],
                "classes": classes,
                "name": name or job.display,
                "measure": bool(measure),
            },
            n_output=len(X) * max(len(classes), 1),
        )
        proba = job.read_array((len(X), len(classes)))
    columns = record.get("columns")
    known = {str(c) for c in X.columns}
    if not (isinstance(columns, list) and all(isinstance(c, str) and c in known for c in columns)):
        raise job.failure("it reported columns that are not in the data")
    size = record.get("size_bytes")
    latency = record.get("latency_ms_1k")
    return TeacherScores(
        proba=proba,
        columns=columns,
        family=_text(record.get("family"), 200) or "model",
        size_bytes=int(size) if isinstance(size, int) and size >= 0 else -1,
        latency_ms_1k=float(latency) if isinstance(latency, float) and latency >= 0 else float(
            "nan"),
    )


def check_teacher_file(
    source: str | os.PathLike[str] | bytes,
    limits: TeacherLimits | None = None,
    *,
    trusted: bool = False,
    filename: str | None = None,
    _checks: bool = True,
) -> TeacherFileInfo:
    """Load a teacher model file in isolation and check it is a classifier.

    The app checks each upload this way before adding it; scoring it later runs the
    same load again in a new child (nothing loaded is ever kept).

    Parameters
    ----------
    source, limits, trusted, filename
        As for :func:`score_teacher_file`.
    _checks : bool, default True
        Tests only (see :func:`run_teacher_file`).

    Returns
    -------
    TeacherFileInfo

    Raises
    ------
    HPMKDInputError
        As for :func:`score_teacher_file`.
    """
    limits = TeacherLimits.from_env() if limits is None else limits
    with _Job(source, filename, limits) as job:
        record = job.run({"mode": "check", "trusted": bool(trusted), "checks": bool(_checks)},
                         n_output=0)
    names = record.get("feature_names")
    classes = record.get("classes")
    n_features = record.get("n_features")
    return TeacherFileInfo(
        family=_text(record.get("family"), 200) or "model",
        n_features=n_features if isinstance(n_features, int) and n_features >= 0 else None,
        feature_names=[_text(n, 200) for n in names] if isinstance(names, list) else None,
        classes=[_text(c, 200) for c in classes] if isinstance(classes, list) else None,
    )


# --------------------------------------------------------------------------- one job
def _text(value: object, limit: int) -> str:
    """Text from the child, printable and bounded (it may echo what the file holds)."""
    if not isinstance(value, str):
        return ""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in value)
    return cleaned[:limit]


class _Job:
    """A private folder holding one job's input and output; removed on exit."""

    def __init__(
        self, source: str | os.PathLike[str] | bytes, filename: str | None,
        limits: TeacherLimits,
    ) -> None:
        self.limits = limits
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.display = os.path.basename(filename or "") or "upload"
            self.data: bytes | None = bytes(source)
            self.path: Path | None = None
        elif isinstance(source, (str, os.PathLike)):
            self.path = Path(source).expanduser().absolute()
            self.display = filename or str(source)
            self.data = None
        else:
            raise TypeError(f"source must be a path or bytes, not {type(source).__name__}")
        suffix = Path(self.display if self.data is not None else str(self.path)).suffix.lower()
        if suffix not in SUPPORTED_EXTENSIONS:
            raise HPMKDInputError(
                f"Could not load '{self.display}': the extension '{suffix or '(none)'}' is not "
                "a supported model format. Accepted extensions: "
                + ", ".join(sorted(SUPPORTED_EXTENSIONS)) + "."
            )
        self.suffix = suffix
        self.folder: Path | None = None
        self.outcome: str | None = None

    def __enter__(self) -> _Job:
        size = len(self.data) if self.data is not None else self._file_size()
        if size > self.limits.max_file_bytes:
            raise HPMKDInputError(
                f"Teacher file '{self.display}' is {size / 1024**2:,.1f} MB, more than the "
                f"{self.limits.upload_limit_mb:,} MB this installation accepts "
                "(HPMKD_UPLOAD_LIMIT_MB). Use a smaller model, or raise that setting (on a "
                "server: ask its administrator)."
            )
        try:
            self.folder = Path(tempfile.mkdtemp(prefix="hpmkd-teacher-"))
            (self.folder / "work").mkdir(mode=0o700)
            if self.data is not None:
                self.path = self.folder / f"model{self.suffix}"
                with open(self.path, "wb") as handle:
                    handle.write(self.data)
        except OSError as exc:
            self.__exit__()
            raise _no_room(exc) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _file_size(self) -> int:
        assert self.path is not None
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            raise HPMKDInputError(
                f"Teacher file '{self.display}' does not exist. Check the path."
            ) from None
        except OSError as exc:
            raise HPMKDInputError(
                f"Teacher file '{self.display}' cannot be read ({exc.strerror}). Check its "
                "permissions."
            ) from None

    # -- running -------------------------------------------------------------
    def run(self, spec: dict[str, Any], n_output: int) -> dict[str, Any]:
        """Run the child on this job; return its JSON record of a success."""
        assert self.folder is not None and self.path is not None
        limits = self.limits
        spec = {
            **spec,
            "model_path": str(self.path),
            "display": self.display,
            "sys_path": _python_path(),
            "limits": {
                "memory_bytes": limits.memory_mb * 1024**2,
                "cpu_seconds": limits.cpu_seconds,
                "open_files": limits.open_files,
                "threads": limits.threads,
                "file_bytes": 8 * n_output + 64 * 1024**2,
                "max_unpacked_bytes": limits.max_unpacked_bytes,
            },
        }
        try:
            with open(self.folder / "job.pkl", "wb") as handle:
                pickle.dump(spec, handle, protocol=pickle.HIGHEST_PROTOCOL)
        except OSError as exc:
            raise _no_room(exc) from exc
        status = _launch(self.folder, limits)
        return self._interpret(status)

    def _interpret(self, status: _Status) -> dict[str, Any]:
        limits = self.limits
        record = self._record() if status.exit_code is not None else None
        if status.killed == "time":
            raise self._error(
                "time",
                f"took longer than {limits.wall_seconds:,} s (HPMKD_TEACHER_WALL_S), so it was "
                "stopped",
                "A genuine but very large model may need more time: raise HPMKD_TEACHER_WALL_S "
                "(on a server: ask its administrator), or give the teacher's probabilities as "
                "columns.",
            )
        if status.killed == "threads":
            raise self._error(
                "threads",
                f"started more than {limits.threads:,} threads (HPMKD_TEACHER_THREADS), so it "
                "was stopped",
                "Model files run on one thread here; save the model with n_jobs=1 or check "
                "that it is the file you meant.",
            )
        if status.signal == signal.SIGXCPU:
            raise self._error(
                "cpu",
                f"used more than {limits.cpu_seconds:,} s of CPU time (HPMKD_TEACHER_CPU_S), so "
                "it was stopped",
                "A genuine but very large model may need more: raise HPMKD_TEACHER_CPU_S (on a "
                "server: ask its administrator), or give the teacher's probabilities as columns.",
            )
        if status.signal is not None:
            what = _SIGNALS.get(status.signal)
            if what is None:
                name = _signal_name(status.signal)
                what = f"was killed by signal {int(status.signal)} ({name})"
                if status.signal == signal.SIGKILL:
                    what += (", which is how the system stops a process past its CPU-time "
                             f"limit ({limits.cpu_seconds:,} s, HPMKD_TEACHER_CPU_S) or out of "
                             f"memory ({limits.memory_mb:,} MB, HPMKD_TEACHER_MEMORY_MB)")
            raise self._error(
                "crash", what,
                "A crafted or corrupt model file does this. Check that it is the file you "
                "meant, save the model again (joblib.dump(model, 'teacher.joblib'), or "
                "booster.save_model('model.txt') for LightGBM), or give the teacher's "
                "probabilities as columns.",
            )
        if status.exit_code == 0 and record is not None and record.get("ok") is True:
            return record
        if record is not None and record.get("ok") is False:
            message = _text(record.get("message"), 4000)
            kind = record.get("kind")
            if kind == "memory":
                raise self._error(
                    "memory",
                    f"needs more memory than the {limits.memory_mb:,} MB it may use "
                    f"(HPMKD_TEACHER_MEMORY_MB), so it was stopped ({message})",
                    "If the model is genuine and large, raise HPMKD_TEACHER_MEMORY_MB (on a "
                    "server: ask its administrator), or score fewer rows.",
                )
            if kind in ("input", "failed") and message:
                raise HPMKDInputError(message)
        raise self._error(
            "failed",
            f"ended without a result (exit code {status.exit_code})",
            "Check that it is the file you meant and save the model again.",
        )

    def _error(self, reason: str, what: str, advice: str) -> TeacherProcessError:
        return TeacherProcessError(
            f"Teacher file '{self.display}' could not be scored: the separate process that "
            f"loads and scores it {what}. That process is isolated and "
            f"resource-limited, so nothing else was affected. {advice}",
            reason,
        )

    def failure(self, what: str) -> TeacherProcessError:
        """The child finished but its output is not what it must be."""
        return self._error("failed", f"returned an invalid result: {what}",
                           "Check that it is the file you meant and save the model again.")

    def _open_output(self, name: str, limit: int) -> bytes | None:
        """A regular file the child wrote (never a link or a pipe), at most ``limit`` bytes."""
        assert self.folder is not None
        try:
            fd = os.open(self.folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
                return None
            return handle.read(limit + 1)[:limit]

    def _record(self) -> dict[str, Any] | None:
        data = self._open_output("result.json", _MAX_RECORD_BYTES)
        if data is None:
            return None
        try:
            record = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        return record if isinstance(record, dict) else None

    def read_array(self, shape: tuple[int, int]) -> np.ndarray:
        """The child's probabilities: a float64 ``.npy`` of exactly ``shape``."""
        expected = 8 * shape[0] * shape[1]
        data = self._open_output("proba.npy", expected + 4096)
        if data is None:
            raise self.failure("no probabilities were written")
        import io

        buffer = io.BytesIO(data)
        try:
            version = np.lib.format.read_magic(buffer)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)(buffer)
        except ValueError as exc:
            raise self.failure(f"the probabilities are not a valid array ({exc})") from None
        found_shape, fortran, dtype = header
        if tuple(found_shape) != shape or fortran or dtype != np.dtype("<f8"):
            raise self.failure(f"probabilities of shape {tuple(found_shape)} and type {dtype}; "
                               f"expected {shape} float64")
        body = data[buffer.tell():]
        if len(body) != expected:
            raise self.failure("the probabilities are cut short")
        return np.frombuffer(body, dtype="<f8").reshape(shape).copy()


def _no_room(exc: OSError) -> TeacherProcessError:
    return TeacherProcessError(
        f"Could not prepare the separate process that scores teacher files: writing its "
        f"files in {tempfile.gettempdir()!r} failed ({exc.strerror or exc}). Free space "
        "there, or point TMPDIR at a folder with room.",
        "failed",
    )


# --------------------------------------------------------------------------- processes
@dataclass
class _Status:
    """How a child ended."""

    exit_code: int | None = None
    signal: int | None = None
    killed: str | None = None  # "time" or "threads": this process stopped it


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[1])


def _python_path() -> list[str]:
    """This process's import path (absolute), the folder holding ``hpmkd`` first."""
    paths = [_package_root()]
    for entry in sys.path:
        entry = os.path.abspath(entry or os.getcwd())
        if entry not in paths and os.path.isdir(entry):
            paths.append(entry)
    return paths


def _child_env() -> dict[str, str]:
    """A minimal environment: no secrets of the server, one thread per numeric library.

    Its import path is the folder holding this ``hpmkd`` and this process's
    ``PYTHONPATH``; a trusted job adds this process's ``sys.path`` at the time it runs
    (where the user's own modules are), a restricted one imports nothing of the user's.
    """
    env = {k: os.environ[k] for k in _KEPT_VARIABLES if k in os.environ}
    env.update(dict.fromkeys(_THREAD_VARIABLES, "1"))
    paths = [_package_root()] + [
        os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
    ]
    env.update(
        PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)),
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        MALLOC_ARENA_MAX="2",
        # pyarrow (imported by pandas) starts an allocator thread otherwise, and the
        # helper must stay single-threaded to fork safely.
        ARROW_DEFAULT_MEMORY_POOL="system",
        JE_ARROW_MALLOC_CONF="background_thread:false",
    )
    return env


def _threads_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _launch(folder: Path, limits: TeacherLimits) -> _Status:
    """Run the job in ``folder`` through the helper process, or in a new interpreter."""
    for _attempt in range(2):
        zygote = _zygote()
        if zygote is None:
            break
        status = zygote.run(folder, limits)
        if status is not None:
            return status
        # The helper ended before it started the job (it retires when idle): again.
    return _run_direct(folder, limits)


def _watch(pid_of: Any, done: Any, kill: Any, limits: TeacherLimits) -> str | None:
    """Wait for a child; kill it past the wall time or the thread limit.

    Returns what this process stopped it for (``"time"``, ``"threads"``) or ``None``.
    """
    deadline = time.monotonic() + limits.wall_seconds
    while not done(_POLL_S):
        pid = pid_of()
        if time.monotonic() > deadline:
            kill()
            return "time"
        if pid is not None:
            threads = _threads_of(pid)
            if threads is not None and threads > limits.threads:
                kill()
                return "threads"
    return None


def _run_direct(folder: Path, limits: TeacherLimits) -> _Status:
    command = [sys.executable, "-P", "-m", CHILD_MODULE, "run", str(folder)]
    with open(folder / "output.txt", "wb") as output:
        try:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                env=_child_env(), cwd=folder / "work", close_fds=True, start_new_session=True,
            )
        except OSError as exc:
            raise TeacherProcessError(
                f"Could not start the separate process that scores teacher files ({exc}). "
                "Check that this Python installation can start subprocesses.",
                "failed",
            ) from exc

    def kill() -> None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)

    def done(timeout: float) -> bool:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    try:
        killed = _watch(lambda: proc.pid, done, kill, limits)
    finally:
        if proc.poll() is None:
            kill()
        proc.wait()
        kill()  # anything it started
    code = proc.returncode
    if killed or code < 0:
        return _Status(signal=-code if code < 0 else None, killed=killed)
    return _Status(exit_code=code)


# --------------------------------------------------------------------------- the helper
class _ZygoteJob:
    def __init__(self) -> None:
        self.pid: int | None = None
        self.status: int | None = None
        self.finished = threading.Event()


class _Zygote:
    """The helper process that forks one child per job (see the module docstring).

    Protocol, one line each way: ``RUN <token> <folder>`` and ``KILL <token>`` to it;
    ``HELLO <pid> fork|nofork``, ``PID <token> <pid>`` and ``EXIT <token> <status>`` from
    it. It kills what a job left behind, and exits when its input closes (this process
    ended) or after a while without jobs.
    """

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.jobs: dict[str, _ZygoteJob] = {}
        self.lock = threading.Lock()
        self.hello = threading.Event()
        self.can_fork = False
        self.dead = False
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", CHILD_MODULE, "zygote"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=_child_env(), cwd="/", close_fds=True, start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, name="hpmkd-teacher-helper",
                                       daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            parts = raw.decode("ascii", "replace").split()
            if len(parts) == 3 and parts[0] == "HELLO":
                self.can_fork = parts[2] == "fork"
                self.hello.set()
                continue
            if len(parts) != 3 or parts[0] not in ("PID", "EXIT"):
                continue
            with self.lock:
                job = self.jobs.get(parts[1])
            if job is None:
                continue
            try:
                number = int(parts[2])
            except ValueError:
                continue
            if parts[0] == "PID":
                job.pid = number
            else:
                job.status = number
                job.finished.set()
        self.dead = True
        self.hello.set()
        with self.lock:
            for job in self.jobs.values():
                job.finished.set()

    def ready(self) -> bool:
        self.hello.wait(_STARTUP_S)
        return self.hello.is_set() and self.can_fork and not self.dead

    def _send(self, line: str) -> bool:
        assert self.proc.stdin is not None
        with self.lock:
            try:
                self.proc.stdin.write(line.encode("ascii") + b"\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                self.dead = True
                return False
        return True

    def run(self, folder: Path, limits: TeacherLimits) -> _Status | None:
        """Run one job; ``None`` when the helper ended before starting it."""
        token = secrets.token_hex(8)
        job = _ZygoteJob()
        with self.lock:
            self.jobs[token] = job
        try:
            if not self._send(f"RUN {token} {folder}"):
                return None
            killed = None
            try:
                killed = _watch(lambda: job.pid, job.finished.wait,
                                lambda: self._send(f"KILL {token}"), limits)
            finally:
                if not job.finished.is_set():
                    self._send(f"KILL {token}")
                    job.finished.wait(10)
            if job.status is None:
                return None if job.pid is None else _Status(signal=signal.SIGKILL,
                                                            killed=killed)
            raw = job.status
            if os.WIFSIGNALED(raw):
                return _Status(signal=os.WTERMSIG(raw), killed=killed)
            return _Status(exit_code=os.WEXITSTATUS(raw), killed=killed)
        finally:
            with self.lock:
                self.jobs.pop(token, None)

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_ZYGOTE: list[_Zygote] = []
_ZYGOTE_LOCK = threading.Lock()
_ZYGOTE_FAILED_AT: list[float] = []
#: After the helper failed to start, jobs start their own interpreter for this long.
_RETRY_AFTER_S: Final = 300.0


def _zygote() -> _Zygote | None:
    """This process's helper, started on first use; ``None`` if it cannot run."""
    with _ZYGOTE_LOCK:
        current = _ZYGOTE[0] if _ZYGOTE else None
        if current is not None and current.owner == os.getpid() and not current.dead \
                and current.proc.poll() is None:
            return current
        _ZYGOTE.clear()
        if _ZYGOTE_FAILED_AT and time.monotonic() - _ZYGOTE_FAILED_AT[0] < _RETRY_AFTER_S:
            return None
        try:
            zygote = _Zygote()
        except OSError:
            _ZYGOTE_FAILED_AT[:] = [time.monotonic()]
            return None
        if not zygote.ready():
            zygote.close()
            _ZYGOTE_FAILED_AT[:] = [time.monotonic()]
            return None
        _ZYGOTE_FAILED_AT.clear()
        _ZYGOTE.append(zygote)
        return zygote
