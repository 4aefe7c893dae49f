"""Sessions on the server's disk: a reload or a server restart finds the inputs again.

A session is a random, unguessable token (:func:`new_token`, 256 bits) that the app puts
in the URL (``?session=<token>``). Its record is JSON (the inputs as
:mod:`hpmkd_app.session_codec` encodes them, the run history); the bytes of uploaded
tables and model files are blobs named by their SHA-256, shared between sessions.

The server chooses the place (``<hpmkd home>/app/sessions``, private, mode 0700) and the
bounds, never the user: a token that is not exactly :data:`TOKEN_CHARS` characters of
the URL-safe alphabet is refused before any path is built, the store keeps at most
:data:`STORE_LIMIT_BYTES` and :data:`MAX_SESSIONS` sessions (the least recently used go
first), and a session unused for :data:`SESSION_TTL_S` is dropped. Writes are atomic
(a temporary file renamed over the old one) and serialized by a file lock, so two
server threads or processes never see half a record or lose a blob another just
referenced. No pickle is ever read here: records are JSON, blobs are bytes that the
app parses as a table or hands to the isolated teacher loader.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpmkd_app.paths import app_dir

log = logging.getLogger(__name__)

#: Characters of a token: ``secrets.token_urlsafe(32)`` (32 random bytes).
TOKEN_CHARS = 43
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_CHARS}}}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
#: Most bytes the store keeps (records and blobs together).
STORE_LIMIT_BYTES = 2 * 1024**3
#: Most sessions kept.
MAX_SESSIONS = 1000
#: A session unused this long is dropped (30 days).
SESSION_TTL_S = 30 * 24 * 3600
#: Version of the record layout.
RECORD_VERSION = 1


class SessionTooLarge(ValueError):
    """One session's files alone exceed the store's size limit."""


def new_token() -> str:
    """A fresh session token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def valid_token(token: object) -> bool:
    """Whether ``token`` has exactly the form of :func:`new_token` (nothing else is ever
    turned into a path).

    Parameters
    ----------
    token : object
    """
    return isinstance(token, str) and _TOKEN.fullmatch(token) is not None


@dataclass(frozen=True)
class _Entry:
    token: str
    path: Path
    used_at: float
    size: int
    blobs: tuple[str, ...]


class SessionStore:
    """Session records and their blobs in a private directory.

    Parameters
    ----------
    directory : Path, optional
        Default ``<hpmkd home>/app/sessions``.
    limit_bytes : int
        Most bytes kept; least recently used sessions are dropped beyond it.
    max_sessions : int
    ttl_s : float
        Sessions unused this long are dropped.
    """

    def __init__(self, directory: Path | None = None, limit_bytes: int = STORE_LIMIT_BYTES,
                 max_sessions: int = MAX_SESSIONS, ttl_s: float = SESSION_TTL_S) -> None:
        self.directory = Path(directory) if directory else app_dir("sessions")
        self.records = self.directory / "records"
        self.blobs = self.directory / "blobs"
        for path in (self.directory, self.records, self.blobs):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.chmod(0o700)
        self.limit_bytes = int(limit_bytes)
        self.max_sessions = int(max_sessions)
        self.ttl_s = float(ttl_s)

    # ------------------------------------------------------------------ public
    def save(self, token: str, record: dict[str, Any], blobs: dict[str, bytes]) -> None:
        """Store a session's record and the blobs it refers to, then enforce the bounds.

        Parameters
        ----------
        token : str
            From :func:`new_token`.
        record : dict
            JSON-ready data (the session's inputs and runs).
        blobs : dict
            SHA-256 hex -> bytes, every blob the record refers to.

        Raises
        ------
        ValueError
            An invalid token or blob name.
        SessionTooLarge
            The session's files alone exceed the size limit (nothing is written).
        """
        path = self._record_path(token)
        for digest in blobs:
            if not _DIGEST.fullmatch(digest):
                raise ValueError(f"invalid blob name {digest[:16]!r}")
        text = json.dumps({**record, "version": RECORD_VERSION, "blobs": sorted(blobs),
                           "saved_at": time.time()}, allow_nan=True)
        need = len(text.encode()) + sum(len(b) for b in blobs.values())
        if need > self.limit_bytes:
            raise SessionTooLarge(
                f"this session's files take {need / 1e6:.1f} MB, more than the "
                f"{self.limit_bytes / 1e6:.0f} MB the server keeps for sessions"
            )
        with self._locked():
            for digest, data in blobs.items():
                target = self.blobs / digest
                if target.exists():
                    target.touch()
                else:
                    _atomic_write(target, data)
            _atomic_write(path, text.encode())
            self._prune(keep=token)

    def load(self, token: str) -> dict[str, Any] | None:
        """The record of ``token`` (marked as used), or ``None`` when unknown or invalid.

        Parameters
        ----------
        token : str
        """
        if not valid_token(token):
            return None
        path = self._record_path(token)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("unreadable session record %s…: %s", token[:6], exc)
            return None
        if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
            return None
        with contextlib.suppress(OSError):
            path.touch()
        return record

    def read_blob(self, digest: str) -> bytes | None:
        """The bytes named ``digest``, or ``None``.

        Parameters
        ----------
        digest : str
            SHA-256 hex (anything else is refused).
        """
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            return None
        try:
            return (self.blobs / digest).read_bytes()
        except OSError:
            return None

    def exists(self, token: str) -> bool:
        """Whether a record is stored under ``token``."""
        return valid_token(token) and self._record_path(token).is_file()

    def size_bytes(self) -> int:
        """Bytes the store holds (records and blobs)."""
        return sum(p.stat().st_size for d in (self.records, self.blobs) for p in d.iterdir()
                   if p.is_file())

    # ------------------------------------------------------------------ internals
    def _record_path(self, token: str) -> Path:
        if not valid_token(token):
            raise ValueError("invalid session token")
        return self.records / f"{token}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.directory / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _entries(self) -> list[_Entry]:
        entries = []
        for path in self.records.glob("*.json"):
            token = path.stem
            if not valid_token(token):
                continue
            try:
                stat = path.stat()
                blobs = json.loads(path.read_text(encoding="utf-8")).get("blobs", [])
            except (OSError, ValueError, AttributeError):
                blobs, stat = [], None
            if stat is None:
                continue
            entries.append(_Entry(token, path, stat.st_mtime, stat.st_size,
                                  tuple(b for b in blobs if isinstance(b, str))))
        return sorted(entries, key=lambda e: e.used_at)

    def _prune(self, keep: str) -> None:
        """Drop expired sessions, then the least recently used ones beyond the bounds, then
        the blobs no session refers to (under the lock)."""
        now = time.time()
        entries = self._entries()
        alive = []
        for entry in entries:
            if entry.token != keep and now - entry.used_at > self.ttl_s:
                entry.path.unlink(missing_ok=True)
            else:
                alive.append(entry)
        blob_sizes = {p.name: p.stat().st_size for p in self.blobs.iterdir() if p.is_file()}

        def total(kept: list[_Entry]) -> int:
            used = {b for e in kept for b in e.blobs}
            return sum(e.size for e in kept) + sum(blob_sizes.get(b, 0) for b in used)

        while len(alive) > 1 and (total(alive) > self.limit_bytes
                                  or len(alive) > self.max_sessions):
            oldest = next((e for e in alive if e.token != keep), None)
            if oldest is None:
                break
            oldest.path.unlink(missing_ok=True)
            alive.remove(oldest)
        used = {b for e in alive for b in e.blobs}
        for name in blob_sizes:
            if name not in used:
                (self.blobs / name).unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
