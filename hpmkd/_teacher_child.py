"""The isolated process that loads and scores one teacher model file.

Started by :mod:`hpmkd.isolation`, never imported by the engine:

``python -m hpmkd._teacher_child run FOLDER``
    Run the job in ``FOLDER`` and exit.
``python -m hpmkd._teacher_child zygote``
    The helper: import the libraries once, then fork one child per ``RUN`` line read on
    standard input and report its pid and how it ended (protocol in
    :class:`hpmkd.child_process._Zygote`). The helper itself never reads a model.

A job first limits itself (:func:`apply_limits`: address space, CPU time, open files,
file size, processes, no core dumps; it dies with the process that started it), moves
into ``FOLDER/work``, then loads the model (:mod:`hpmkd.safe_load`, or plain ``joblib``
for a trusted file), computes what was asked and writes ``FOLDER/result.json`` (and
``FOLDER/proba.npy``). Exit codes: 0 done, 3 the file was refused or does not fit the
data (the message is in the record), 4 out of memory, 5 another failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pickle
import resource
import select
import signal
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_REFUSED, EXIT_MEMORY, EXIT_FAILED = 0, 3, 4, 5
#: The helper retires after this long without a job (the next job starts a new one).
IDLE_EXIT_S = 600.0
_PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------- limits
def _vm_size() -> int | None:
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _user_tasks() -> int:
    """Threads this user runs now (what ``RLIMIT_NPROC`` counts)."""
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid == uid:
                count += len(os.listdir(f"/proc/{entry}/task"))
        except OSError:
            continue
    return count


def _lower(which: int, value: int) -> None:
    """Set soft and hard limit to ``value`` (never above the current hard limit)."""
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def apply_limits(limits: dict[str, int]) -> None:
    """Limit this process for good (hard limits are lowered too).

    Parameters
    ----------
    limits : dict
        ``memory_bytes`` (beyond what is mapped now), ``cpu_seconds``, ``open_files``,
        ``threads``, ``file_bytes``.
    """
    with contextlib.suppress(OSError, AttributeError):  # die with the process that started it
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    _lower(resource.RLIMIT_CORE, 0)
    cpu = int(limits["cpu_seconds"])
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or hard > cpu + 5:
        # SIGXCPU at the limit, SIGKILL five seconds later if it is ignored.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    _lower(resource.RLIMIT_NOFILE, int(limits["open_files"]))
    _lower(resource.RLIMIT_FSIZE, int(limits["file_bytes"]))
    mapped = _vm_size()
    if mapped is not None:
        _lower(resource.RLIMIT_AS, mapped + int(limits["memory_bytes"]))
    if os.geteuid() != 0:  # root is not held to RLIMIT_NPROC; the parent counts threads
        _lower(resource.RLIMIT_NPROC, _user_tasks() + int(limits["threads"]))


# --------------------------------------------------------------------------- one job
def _write(folder: Path, name: str, data: bytes) -> None:
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _record(folder: Path, record: dict[str, Any]) -> None:
    _write(folder, "result.json", json.dumps(record, allow_nan=False).encode("utf-8"))


def _label(value: Any) -> str:
    return str(value.item() if hasattr(value, "item") else value)


def _describe(model: Any) -> dict[str, Any]:
    import numpy as np

    from hpmkd.teacher import _is_lgb_booster, expected_feature_names

    n_features = (model.num_feature() if _is_lgb_booster(model)
                  else getattr(model, "n_features_in_", None))
    classes = getattr(model, "classes_", None)
    names = expected_feature_names(model)
    return {
        "family": type(model).__name__,
        "n_features": int(n_features) if isinstance(n_features, (int, np.integer)) else None,
        "feature_names": [str(n) for n in names] if names is not None else None,
        "classes": [_label(c) for c in classes] if classes is not None else None,
    }


def _load(spec: dict[str, Any]) -> Any:
    from hpmkd.errors import HPMKDInputError
    from hpmkd.safe_load import state_checks
    from hpmkd.safe_load.loader import _load_path
    from hpmkd.teacher import _is_lgb_booster

    state_checks._CHECKS["families"] = bool(spec["checks"])
    if spec["trusted"]:  # the user's own modules, as the parent would find them
        sys.path[:0] = [p for p in spec["sys_path"] if p not in sys.path]
    model = _load_path(
        Path(spec["model_path"]), spec["display"], trusted=bool(spec["trusted"]),
        max_unpacked_bytes=int(spec["limits"]["max_unpacked_bytes"]),
    )
    if not (_is_lgb_booster(model) or callable(getattr(model, "predict_proba", None))):
        raise HPMKDInputError(
            f"Teacher file {spec['display']!r} holds a {type(model).__name__}, not a "
            "classifier with predict_proba. Save the fitted classifier itself."
        )
    return model


def _score(spec: dict[str, Any], model: Any, folder: Path) -> dict[str, Any]:
    import numpy as np

    from hpmkd.metrics import latency_ms_1k, single_thread_predictor, size_bytes
    from hpmkd.teacher import Teacher, teacher_probabilities

    frame = spec["frame"]
    teacher = Teacher(name=spec["name"], kind="object", model=model)
    # One thread fewer than the in-process default: this process's threads are limited.
    proba = teacher_probabilities(
        teacher, frame, spec["feature_columns"], spec["classes"], pipelined=False
    )
    columns = teacher.feature_columns(frame, spec["feature_columns"])
    record: dict[str, Any] = {"columns": [str(c) for c in columns], **_describe(model)}
    if spec["measure"]:
        try:
            record["size_bytes"] = size_bytes(model)
        except Exception:  # a trusted model that does not pickle
            record["size_bytes"] = -1
        try:
            latency = latency_ms_1k(single_thread_predictor(model), frame[columns])
            record["latency_ms_1k"] = latency if np.isfinite(latency) else None
        except Exception:
            record["latency_ms_1k"] = None
    fd = os.open(folder / "proba.npy", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        np.save(handle, np.ascontiguousarray(proba, dtype="<f8"), allow_pickle=False)
    return record


def _refit(spec: dict[str, Any], model: Any, folder: Path) -> dict[str, Any]:
    """``teacher_refit="oof"``: clones of the loaded teacher fitted here, in the child."""
    import numpy as np

    from hpmkd.refit import oof_probabilities

    proba = oof_probabilities(
        model, spec["frame"], spec["feature_columns"], spec["classes"], spec["y_train"],
        spec["train"], spec["folds"], spec["random_state"], spec["name"],
    )
    fd = os.open(folder / "proba.npy", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        np.save(handle, np.ascontiguousarray(proba, dtype="<f8"), allow_pickle=False)
    return _describe(model)


def run_job(folder_text: str) -> int:
    """Run the job in ``folder_text``; return the exit code."""
    folder = Path(folder_text)
    with open(folder / "job.pkl", "rb") as handle:  # written by the parent process
        spec = pickle.load(handle)
    apply_limits(spec["limits"])
    work = folder / "work"
    os.chdir(work)
    os.environ["TMPDIR"] = str(work)
    import tempfile

    tempfile.tempdir = str(work)
    try:
        model = _load(spec)
        if spec["mode"] == "check":
            record = _describe(model)
        elif spec["mode"] == "refit":
            record = _refit(spec, model, folder)
        else:
            record = _score(spec, model, folder)
        _record(folder, {"ok": True, **record})
        return EXIT_OK
    except MemoryError:
        _safely(folder, "memory", "a MemoryError")
        return EXIT_MEMORY
    except RecursionError:
        _safely(folder, "input", f"Could not load {spec['display']!r}: its objects are "
                "nested too deeply to read; it may be corrupt or crafted. Save the model "
                "again.")
        return EXIT_REFUSED
    except ValueError as exc:  # HPMKDInputError, UnsafeModelError, ModelFileError
        if isinstance(exc.__cause__, MemoryError):  # the loader's wrapping of it
            _safely(folder, "memory", "a MemoryError while loading it")
            return EXIT_MEMORY
        _safely(folder, "input", " ".join(str(exc).split()))
        return EXIT_REFUSED
    except Exception as exc:
        _safely(folder, "failed", f"Teacher file {spec['display']!r} failed: "
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}. Check that it is "
                "the file you meant and save the model again.")
        return EXIT_FAILED


def _safely(folder: Path, kind: str, message: str) -> None:
    with contextlib.suppress(Exception):  # else the parent reports the exit code
        _record(folder, {"ok": False, "kind": kind, "message": message[:4000]})


# --------------------------------------------------------------------------- the helper
def _preload() -> None:
    """Import what every job needs, once, before the first fork."""
    import lightgbm  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import threadpoolctl  # noqa: F401

    import hpmkd.metrics
    import hpmkd.refit
    import hpmkd.safe_load
    import hpmkd.teacher  # noqa: F401

    with contextlib.suppress(ImportError):
        import skops.io  # noqa: F401


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode("ascii"))


def _start(folder: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = EXIT_FAILED
    try:
        os.setsid()
        out = os.open(os.path.join(folder, "output.txt"),
                      os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.closerange(3, 1024)
        code = run_job(folder)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def zygote() -> int:
    """The helper loop (see the module docstring)."""
    _preload()
    single = len(os.listdir("/proc/self/task")) == 1
    _say(f"HELLO {os.getpid()} {'fork' if single else 'nofork'}")
    if not single:
        return 0
    running: dict[int, str] = {}
    tokens: dict[str, int] = {}
    pending = b""
    idle_since = time.monotonic()
    open_input = True
    while open_input or running:
        if open_input:
            ready, _, _ = select.select([0], [], [], 0.02)
            if ready:
                chunk = os.read(0, 65536)
                if not chunk:
                    open_input = False
                    for pid in running:
                        _kill_group(pid)
                pending += chunk
        else:
            time.sleep(0.02)
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            parts = raw.decode("utf-8", "replace").split(" ", 2)
            if len(parts) == 3 and parts[0] == "RUN" and open_input:
                pid = _start(parts[2])
                running[pid], tokens[parts[1]] = parts[1], pid
                _say(f"PID {parts[1]} {pid}")
                idle_since = time.monotonic()
            elif len(parts) == 2 and parts[0] == "KILL" and parts[1] in tokens:
                _kill_group(tokens[parts[1]])
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            token = running.pop(pid, None)
            _kill_group(pid)  # whatever the job started
            if token is not None:
                tokens.pop(token, None)
                _say(f"EXIT {token} {status}")
            idle_since = time.monotonic()
        if not running and time.monotonic() - idle_since > IDLE_EXIT_S:
            return 0
    return 0


def _kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``run FOLDER`` or ``zygote``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "run":
        return run_job(args[1])
    if args == ["zygote"]:
        try:
            return zygote()
        except (BrokenPipeError, KeyboardInterrupt):
            return 0
    print("usage: python -m hpmkd._teacher_child run FOLDER | zygote", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
