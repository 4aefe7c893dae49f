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

import json
import os
import pickle
import shutil
import signal
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from hpmkd.child_process import _launch, _python_path, _signal_name, _Status
from hpmkd.errors import HPMKDInputError, TeacherProcessError
from hpmkd.safe_load.loader import SUPPORTED_EXTENSIONS
from hpmkd.settings import TeacherLimits

__all__ = [
    "TeacherFileInfo",
    "TeacherScores",
    "check_teacher_file",
    "refit_teacher_file",
    "run_teacher_file",
    "score_teacher_file",
]

#: Exit codes of the child besides 0 (see :mod:`hpmkd._teacher_child`).
EXIT_REFUSED, EXIT_MEMORY, EXIT_FAILED = 3, 4, 5
#: The most a child's JSON record may hold.
_MAX_RECORD_BYTES: Final = 1024 * 1024
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


def refit_teacher_file(
    source: str | os.PathLike[str] | bytes,
    X: pd.DataFrame,
    feature_columns: Sequence[str],
    classes: Sequence[Any],
    y_train: np.ndarray,
    train: np.ndarray,
    folds: int,
    random_state: int,
    limits: TeacherLimits | None = None,
    *,
    trusted: bool = False,
    filename: str | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Cross-fitted probabilities of clones of a teacher file, computed in isolation.

    The child loads the file as for :func:`score_teacher_file` and runs
    :func:`hpmkd.refit.oof_probabilities` there (``teacher_refit="oof"``): the clones
    are fitted in the child, under its limits, and only their probabilities come back.

    Parameters
    ----------
    source, X, feature_columns, classes, limits, trusted, filename
        As for :func:`score_teacher_file`.
    y_train : ndarray of int
        Class index of each training row (in the order of ``train``); only these labels
        go to the child.
    train : ndarray of int
        Positions of the training rows (out-of-fold probabilities); every other row is
        scored by a clone fitted on all of them.
    folds : int
    random_state : int
    name : str, optional
        The teacher's name in messages.

    Returns
    -------
    ndarray of shape (len(X), len(classes))

    Raises
    ------
    HPMKDInputError
        As for :func:`score_teacher_file`, and a teacher that cannot be cloned or refitted.
    """
    limits = TeacherLimits.from_env() if limits is None else limits
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a DataFrame, not {type(X).__name__}")
    classes = list(classes)
    with _Job(source, filename, limits) as job:
        job.run(
            {
                "mode": "refit",
                "trusted": bool(trusted),
                "checks": True,
                "frame": X.reset_index(drop=True),
                "feature_columns": [str(c) for c in feature_columns],
                "classes": classes,
                "y_train": np.asarray(y_train, dtype=np.int64),
                "train": np.asarray(train, dtype=np.int64),
                "folds": int(folds),
                "random_state": int(random_state),
                "name": name or job.display,
            },
            n_output=len(X) * max(len(classes), 1),
        )
        return job.read_array((len(X), len(classes)))


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
