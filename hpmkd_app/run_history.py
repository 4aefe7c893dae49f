"""A session's runs, each bound to the fingerprint of the inputs it ran on.

A :class:`RunRecord` is plain data written when a run starts (the job id, the inputs'
fingerprint from :func:`hpmkd_app.session_codec.fingerprint`, the dataset's name, the
method, the seed, the time) and completed when it ends (status, selected student). The
pages ask :func:`current` for the run of the *current* inputs: a run made on other
data, teachers, test rows, config or seed is never shown or exported as the current
one; it stays in the history, and :func:`label` says whether it matches.

No Streamlit here (:mod:`hpmkd_app.sessions` keeps the records in the session).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from hpmkd_app.runner import FINAL_STATES, JobView

__all__ = ["LOST", "MAX_RUNS", "RunRecord", "current", "label", "latest_done", "remember",
           "running", "updated"]

#: Most runs a session remembers (the oldest are forgotten first).
MAX_RUNS = 50
#: Status of a run that was still going when the server stopped (a job lives in the
#: server's memory: it cannot survive a restart).
LOST = "lost in a server restart"


@dataclass(frozen=True)
class RunRecord:
    """One run of a session and the inputs it ran on.

    Attributes
    ----------
    job_id : str
    fingerprint : str
        Of the inputs when the run started; ``""`` when unknown (a run opened from an
        old ``?job=`` link).
    dataset : str
        The table's name.
    started_at : float
        ``time.time()``.
    method, seed
        As requested.
    status : str
        Last status seen (``starting``, ``running``, ``done``, ``cancelled``, ``error``
        ...): after a server restart the job itself may be gone.
    finished_at : float or None
    selected : str or None
        The selected student of a finished run.
    """

    job_id: str
    fingerprint: str
    dataset: str
    started_at: float
    method: str = "auto"
    seed: int = 0
    status: str = "starting"
    finished_at: float | None = None
    selected: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the run reached a final state (or was lost) when last seen."""
        return self.status in FINAL_STATES or self.status == LOST

    def matches(self, fingerprint: str) -> bool:
        """Whether this run was made on inputs with this fingerprint.

        Parameters
        ----------
        fingerprint : str
        """
        return bool(self.fingerprint) and self.fingerprint == fingerprint

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """The inverse of :meth:`to_dict` (unknown keys ignored).

        Parameters
        ----------
        data : dict
        """
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def updated(record: RunRecord, view: JobView | None, selected: str | None = None) -> RunRecord:
    """``record`` with the status of its job (unchanged when the job is unknown).

    Parameters
    ----------
    record : RunRecord
    view : JobView or None
        The job's snapshot, if the server still knows the job (``None`` for a run that
        was going: it is marked :data:`LOST`).
    selected : str, optional
        The finished run's selected student.
    """
    if view is None:
        # A running job is always in the server's registry; gone means the server
        # restarted under it.
        return record if record.finished else replace(record, status=LOST)
    return replace(record, status=view.status, finished_at=view.finished_at,
                   selected=selected or record.selected)


def current(records: Sequence[RunRecord], fingerprint: str) -> RunRecord | None:
    """The latest run made on the inputs with ``fingerprint`` (any status).

    Parameters
    ----------
    records : sequence of RunRecord
        Oldest first.
    fingerprint : str
    """
    return next((r for r in reversed(records) if r.matches(fingerprint)), None)


def latest_done(records: Sequence[RunRecord], fingerprint: str) -> RunRecord | None:
    """The latest *finished* run (status ``done``) of the inputs with ``fingerprint``.

    Parameters
    ----------
    records : sequence of RunRecord
    fingerprint : str
    """
    return next((r for r in reversed(records)
                 if r.matches(fingerprint) and r.status == "done"), None)


def running(records: Iterable[RunRecord]) -> RunRecord | None:
    """The latest run still going (on any inputs), if any.

    Parameters
    ----------
    records : iterable of RunRecord
    """
    going = [r for r in records if not r.finished]
    return going[-1] if going else None


def label(record: RunRecord, fingerprint: str) -> str:
    """One line for the run history: dataset, time, student, status, match.

    Parameters
    ----------
    record : RunRecord
    fingerprint : str
        Of the current inputs.
    """
    when = dt.datetime.fromtimestamp(record.started_at).strftime("%Y-%m-%d %H:%M:%S")
    student = f"student {record.selected}" if record.selected else "no student"
    match = ("matches the current inputs" if record.matches(fingerprint)
             else "does not match the current inputs")
    return (f"{record.dataset} · {when} · {record.method}, seed {record.seed} · {student} · "
            f"{record.status} · {match}")


def remember(records: Sequence[RunRecord], record: RunRecord) -> list[RunRecord]:
    """``records`` with ``record`` appended (replacing one with its job id), at most
    :data:`MAX_RUNS` kept.

    Parameters
    ----------
    records : sequence of RunRecord
    record : RunRecord
    """
    kept = [r for r in records if r.job_id != record.job_id]
    kept.append(record)
    return kept[-MAX_RUNS:]
