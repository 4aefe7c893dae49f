"""The processes that score teacher files: launching one, watching it, and the helper.

:mod:`hpmkd.isolation` prepares a job folder and reads what the child wrote; this module
runs the child. Children are forked from a helper process ("zygote") started once per
process with a minimal environment (so nothing of the server is inherited, at about 50 ms a
job); when the helper cannot start, each job starts its own interpreter
(``python -m hpmkd._teacher_child run``). The parent enforces wall time and the thread
count and kills a child past them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hpmkd.errors import TeacherProcessError
from hpmkd.settings import TeacherLimits

#: The child module (``python -m``); it is never imported here.
CHILD_MODULE: Final = "hpmkd._teacher_child"
#: How long the helper process may take to import the libraries.
_STARTUP_S: Final = 120.0
#: How often the parent looks at a running child (wall time, thread count).
_POLL_S: Final = 0.05
_THREAD_VARIABLES: Final = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS", "NUMBA_NUM_THREADS",
)
_KEPT_VARIABLES: Final = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


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
