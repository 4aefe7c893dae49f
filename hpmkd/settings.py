"""``ServerSettings``: the settings of the machine that runs the work, read from its
environment.

Some ``HPMConfig`` fields say where and how the work runs rather than what the experiment
is: worker processes (``n_jobs``), a Dask scheduler address (``dask_scheduler``), the
cache and memory folders (``cache_dir``, ``memory_dir``) and the cache size
(``cache_size_limit_gb``); their specs carry ``server=True``. A person on their own
machine sets them freely (Python API, ``hpmkd distill --set``). A shared server must not
let its web users set them: a scheduler address runs code in the server process, and a
folder makes the server create, ``chmod`` and write a directory wherever it may. So a
server (the app) builds its runs from the experiment fields only and takes these from
here, from environment variables its administrator sets:

======================================  ===================================================
``HPMKD_HOME``                          base folder (default ``$XDG_CACHE_HOME/hpmkd`` or
                                        ``~/.cache/hpmkd``)
``HPMKD_CACHE_DIR``                     disk cache folder (default ``$HPMKD_HOME/cache``)
``HPMKD_MEMORY_DIR``                    optimization memory folder (default
                                        ``$HPMKD_HOME/memory``)
``HPMKD_CACHE_SIZE_LIMIT_GB``           disk cache size limit (default 2)
``HPMKD_MAX_JOBS``                      worker processes of a run with parallel training
                                        (default 2, at most 256)
``HPMKD_DASK_SCHEDULER``                Dask scheduler address ``tcp://host:port`` or
                                        ``tls://host:port`` (default unset: local workers)
======================================  ===================================================

Teacher model files are loaded and scored in a separate, resource-limited process
(:mod:`hpmkd.isolation`); :class:`TeacherLimits` holds its limits, read from
``HPMKD_UPLOAD_LIMIT_MB`` and ``HPMKD_TEACHER_*`` (:data:`TEACHER_LIMIT_VARS`). They apply
wherever a teacher file is read: the app, the command line and the Python API.

This module never imports streamlit: the app reads the settings through it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpmkd.config import HPMConfig
from hpmkd.errors import HPMKDInputError, ServerSettingError
from hpmkd.paths import hpmkd_home

__all__ = [
    "ENV_VARS",
    "TEACHER_LIMIT_VARS",
    "ServerSettings",
    "TeacherLimits",
    "idle_server_fields_reset",
    "server_field_names",
]

#: The environment variable of each server field of ``HPMConfig``.
ENV_VARS: dict[str, str] = {
    "cache_dir": "HPMKD_CACHE_DIR",
    "memory_dir": "HPMKD_MEMORY_DIR",
    "cache_size_limit_gb": "HPMKD_CACHE_SIZE_LIMIT_GB",
    "n_jobs": "HPMKD_MAX_JOBS",
    "dask_scheduler": "HPMKD_DASK_SCHEDULER",
}

#: ``tcp://`` or ``tls://``, a host name, IPv4 or bracketed IPv6 address, an optional port.
_SCHEDULER = re.compile(
    r"^(tcp|tls)://([A-Za-z0-9][A-Za-z0-9.\-]*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$"
)


#: Environment variable, field of :class:`TeacherLimits`, default, smallest, largest, unit.
TEACHER_LIMIT_VARS: dict[str, tuple[str, int, int, int, str]] = {
    "HPMKD_UPLOAD_LIMIT_MB": ("upload_limit_mb", 200, 1, 1_000_000, "MB"),
    "HPMKD_TEACHER_MEMORY_MB": ("memory_mb", 4096, 256, 10_000_000, "MB"),
    "HPMKD_TEACHER_CPU_S": ("cpu_seconds", 300, 1, 10_000_000, "seconds"),
    "HPMKD_TEACHER_WALL_S": ("wall_seconds", 600, 1, 10_000_000, "seconds"),
    "HPMKD_TEACHER_THREADS": ("threads", 16, 1, 4096, "threads"),
    "HPMKD_TEACHER_OPEN_FILES": ("open_files", 64, 16, 65536, "open files"),
}
#: What a compressed teacher file may unpack to, in multiples of the upload limit.
UNPACKED_FACTOR = 4


@dataclass(frozen=True)
class TeacherLimits:
    """Limits of the process that loads and scores a teacher model file.

    Attributes
    ----------
    upload_limit_mb : int
        Largest teacher file accepted (``HPMKD_UPLOAD_LIMIT_MB``, default 200, the app's
        upload limit); a compressed file may unpack to :data:`UNPACKED_FACTOR` times it.
    memory_mb : int
        Memory (address space) the process may take beyond the libraries it loads
        (``HPMKD_TEACHER_MEMORY_MB``, default 4096).
    cpu_seconds : int
        CPU time (``HPMKD_TEACHER_CPU_S``, default 300).
    wall_seconds : int
        Wall-clock time, start to finish (``HPMKD_TEACHER_WALL_S``, default 600).
    threads : int
        Threads the process may run at once (``HPMKD_TEACHER_THREADS``, default 16).
    open_files : int
        Files it may hold open (``HPMKD_TEACHER_OPEN_FILES``, default 64).
    """

    upload_limit_mb: int = 200
    memory_mb: int = 4096
    cpu_seconds: int = 300
    wall_seconds: int = 600
    threads: int = 16
    open_files: int = 64

    @property
    def max_file_bytes(self) -> int:
        """The largest teacher file accepted, in bytes."""
        return self.upload_limit_mb * 1024**2

    @property
    def max_unpacked_bytes(self) -> int:
        """What a compressed teacher file may unpack to, in bytes."""
        return UNPACKED_FACTOR * self.max_file_bytes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TeacherLimits:
        """Read the limits from ``HPMKD_UPLOAD_LIMIT_MB`` and ``HPMKD_TEACHER_*``.

        Parameters
        ----------
        environ : mapping, optional
            Default ``os.environ``.

        Raises
        ------
        ServerSettingError
            A variable is not a whole number in its range; the message names it.
        """
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for variable, (field, default, low, high, unit) in TEACHER_LIMIT_VARS.items():
            text = env.get(variable, "").strip()
            if not text:
                values[field] = default
                continue
            try:
                value = int(text)
            except ValueError:
                value = low - 1
            if not low <= value <= high:
                raise ServerSettingError(
                    f"Server setting {variable}={text!r} is invalid: use a whole number of "
                    f"{unit} from {low:,} to {high:,} (default {default:,}), or unset it.",
                    variable,
                )
            values[field] = value
        return cls(**values)


def server_field_names() -> tuple[str, ...]:
    """Names of the ``HPMConfig`` fields whose spec has ``server=True``, in order."""
    return tuple(s.name for s in HPMConfig.field_specs() if s.server)


def idle_server_fields_reset(config: HPMConfig, method: str) -> HPMConfig:
    """``config`` with every server field that has no effect on a run of ``method`` back
    at its default.

    A server sets its fields for every run (:meth:`ServerSettings.config`); a run that
    does not use one (the memory folder with ``use_memory`` off, the workers with
    ``use_parallel`` off, every one of them under ``legacy``) changes nothing without it,
    and its ``HPMKDConfigWarning`` would only tell the server's log about a choice of the
    server's, not the run's. Experiment fields are left as they are (they still warn).

    Parameters
    ----------
    config : HPMConfig
    method : {"hpm", "legacy"}
        The method that runs (``auto`` resolved).

    Returns
    -------
    HPMConfig
    """
    server = set(server_field_names())
    idle = [name for name, _ in config.ineffective_fields(method) if name in server]
    defaults = HPMConfig()
    return config.with_updates(**{name: getattr(defaults, name) for name in idle})


@dataclass(frozen=True)
class ServerSettings:
    """Where and how a server runs the work; read with :meth:`from_env`.

    Attributes
    ----------
    home : Path
        ``HPMKD_HOME`` (see :func:`hpmkd.paths.hpmkd_home`).
    cache_dir : Path
        Folder of the disk cache.
    memory_dir : Path
        Folder of the optimization memory.
    cache_size_limit_gb : float
        Size limit of the disk cache.
    max_jobs : int
        Worker processes of a run with parallel training on.
    dask_scheduler : str or None
        Address of a Dask scheduler the administrator runs, or ``None`` (local workers).
    teacher_limits : TeacherLimits
        Limits of the process that loads and scores uploaded teacher files.
    """

    home: Path
    cache_dir: Path
    memory_dir: Path
    cache_size_limit_gb: float
    max_jobs: int
    dask_scheduler: str | None = None
    teacher_limits: TeacherLimits = TeacherLimits()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Read and validate the settings from environment variables.

        Parameters
        ----------
        environ : mapping, optional
            Default ``os.environ``.

        Raises
        ------
        ServerSettingError
            A variable holds an invalid value; the message names the variable, the value
            and what to set instead.
        """
        env = os.environ if environ is None else environ
        home = _absolute_dir("HPMKD_HOME", str(hpmkd_home(env)))
        defaults = HPMConfig()
        cache_dir = _absolute_dir(ENV_VARS["cache_dir"],
                                  _get(env, "cache_dir") or str(home / "cache"))
        memory_dir = _absolute_dir(ENV_VARS["memory_dir"],
                                   _get(env, "memory_dir") or str(home / "memory"))
        size = _number(env, "cache_size_limit_gb", float, defaults.cache_size_limit_gb)
        jobs = _number(env, "n_jobs", int, defaults.n_jobs)
        scheduler = _get(env, "dask_scheduler") or None
        if scheduler is not None and not _SCHEDULER.match(scheduler):
            raise ServerSettingError(
                f"Server setting {ENV_VARS['dask_scheduler']}={scheduler!r} is not a Dask "
                "scheduler address. Set it to tcp://host:port or tls://host:port, or unset "
                "it to train on local worker processes.",
                ENV_VARS["dask_scheduler"],
            )
        return cls(home=home, cache_dir=cache_dir, memory_dir=memory_dir,
                   cache_size_limit_gb=size, max_jobs=jobs, dask_scheduler=scheduler,
                   teacher_limits=TeacherLimits.from_env(env))

    def values(self) -> dict[str, Any]:
        """The server fields of ``HPMConfig`` as this server sets them."""
        return {
            "cache_dir": str(self.cache_dir),
            "memory_dir": str(self.memory_dir),
            "cache_size_limit_gb": self.cache_size_limit_gb,
            "n_jobs": self.max_jobs,
            "dask_scheduler": self.dask_scheduler,
        }

    def config(self, experiment: Mapping[str, Any]) -> HPMConfig:
        """An ``HPMConfig`` from experiment fields only, with this server's settings.

        Parameters
        ----------
        experiment : mapping
            Field values (``HPMConfig.from_dict`` input). Server fields are refused: a
            caller that takes values from an untrusted person never passes them on.

        Raises
        ------
        HPMKDInputError
            ``experiment`` names a server field, or a value is invalid.
        """
        refuse_server_fields(experiment, "the configuration")
        return HPMConfig.from_dict({**experiment, **self.values()})


def refuse_server_fields(values: Mapping[str, Any], where: str) -> None:
    """Raise when ``values`` names a server field of ``HPMConfig``.

    Parameters
    ----------
    values : mapping
    where : str
        What held the values, for the message ("the uploaded file 'x.json'").

    Raises
    ------
    HPMKDInputError
        Naming the fields and the environment variables that set them.
    """
    found = [name for name in server_field_names() if name in values]
    if found:
        names = ", ".join(found)
        variables = ", ".join(ENV_VARS[n] for n in found)
        raise HPMKDInputError(
            f"{where[:1].upper()}{where[1:]} sets {names}, which belong to the server that "
            f"runs the work, not to a run: the server's administrator sets them with "
            f"{variables}. Remove {'them' if len(found) > 1 else 'it'} and try again."
        )


def _get(env: Mapping[str, str], field: str) -> str:
    return env.get(ENV_VARS[field], "").strip()


def _absolute_dir(variable: str, text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise ServerSettingError(
            f"Server setting {variable}={text!r} is a relative path; its meaning would "
            "depend on the folder the server was started from. Set an absolute path.",
            variable,
        )
    if path.exists() and not path.is_dir():
        raise ServerSettingError(
            f"Server setting {variable}={text!r} is a file, not a folder. Set a folder path.",
            variable,
        )
    return path


def _number(env: Mapping[str, str], field: str, kind: type, default: Any) -> Any:
    text = _get(env, field)
    if not text:
        return default
    spec = HPMConfig.field_spec(field)
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not spec.accepts(value):
        raise ServerSettingError(
            f"Server setting {ENV_VARS[field]}={text!r} is invalid: {spec.requirement()}.",
            ENV_VARS[field],
        )
    return value
