"""The inputs of a session as plain JSON: their fingerprint and their stored form.

Two walks over the same values (the ones :data:`hpmkd_app.state.INPUTS` lists, plus the
session's run history):

- :func:`fingerprint` hashes what *decides* a run: a table by its bytes' digest and
  name, a teacher by its identity (:meth:`~hpmkd_app.teachers.TeacherSource.key`: the
  file's digest, the probability columns, the reference teacher's settings), the config
  form, the method, the seed. Equal fingerprints mean a run made on one set of inputs
  is the run of the other.
- :func:`encode` / :func:`decode` turn the values into JSON and back for the session
  store (:mod:`hpmkd_app.session_store`); bytes (uploaded tables and model files) leave
  the JSON as blobs named by their SHA-256, and a table is re-parsed from its bytes on
  restore, so the restored table is the one that was loaded.

A value of a type not handled here is a ``TypeError``: a new kind of input must be
taught to both walks, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from hpmkd.errors import HPMKDInputError
from hpmkd_app.tables import LoadedTable, digest_bytes, load_table_bytes
from hpmkd_app.teachers import TeacherSource

__all__ = ["RestoreProblem", "decode", "encode", "fingerprint", "identity"]

_TABLE, _TEACHER, _DICT, _TUPLE = "$table", "$teacher", "$dict", "$tuple"


def identity(value: Any) -> Any:
    """What of ``value`` decides a run, as JSON-ready plain data.

    Parameters
    ----------
    value : object
        ``None``, a scalar, a list/tuple/dict of those, a
        :class:`~hpmkd_app.tables.LoadedTable` or a
        :class:`~hpmkd_app.teachers.TeacherSource`.

    Raises
    ------
    TypeError
        A type this module does not know.
    """
    if isinstance(value, LoadedTable):
        return ["table", value.digest, value.name]
    if isinstance(value, TeacherSource):
        return ["teacher", *(identity(part) for part in value.key())]
    if isinstance(value, Mapping):
        return {str(k): identity(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [identity(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        # NaN has no JSON literal that compares equal; spell it.
        return repr(value) if not math.isfinite(value) else value
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return identity(value.item())
    raise TypeError(f"{type(value).__name__} is not a known session input type")


def fingerprint(values: Mapping[str, Any]) -> str:
    """SHA-256 of the identities of ``values`` (a run's inputs by session key).

    Parameters
    ----------
    values : mapping
        Session key -> current value (:data:`hpmkd_app.state.INPUTS`).

    Returns
    -------
    str
        64 hex digits; equal for equal inputs, also after a save and restore.
    """
    text = json.dumps(identity(dict(values)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- storage
def encode(value: Any, blobs: dict[str, bytes]) -> Any:
    """``value`` as JSON-ready data; its bytes go to ``blobs`` (SHA-256 -> bytes).

    Parameters
    ----------
    value : object
        As for :func:`identity`.
    blobs : dict
        Filled with the bytes the JSON refers to.

    Raises
    ------
    TypeError
        A type this module does not know.
    ValueError
        A table made in memory (no file bytes) cannot be stored.
    """
    if isinstance(value, LoadedTable):
        if not value.raw:
            raise ValueError(f"table {value.name!r} has no file bytes to store")
        # The digest was taken from these very bytes when the table was loaded; hashing
        # a large upload again on every rerun would cost a second or more.
        digest = value.digest if _is_digest(value.digest) else digest_bytes(value.raw)
        blobs[digest] = value.raw
        return {_TABLE: {"name": value.name, "source": value.source, "digest": value.digest,
                         "blob": digest}}
    if isinstance(value, TeacherSource):
        blob = None
        if value.data:
            blob = value.digest if _is_digest(value.digest) else digest_bytes(value.data)
            blobs[blob] = value.data
        return {_TEACHER: {
            "kind": value.kind, "name": value.name, "filename": value.filename,
            "digest": value.digest, "proba_cols": list(value.proba_cols),
            "settings": encode(value.settings, blobs), "trusted": bool(value.trusted),
            "blob": blob,
        }}
    if isinstance(value, Mapping):
        return {_DICT: {str(k): encode(v, blobs) for k, v in value.items()}}
    if isinstance(value, tuple):
        return {_TUPLE: [encode(v, blobs) for v in value]}
    if isinstance(value, list):
        return [encode(v, blobs) for v in value]
    if value is None or isinstance(value, (bool, int, str, float)):
        return value
    if hasattr(value, "item") and callable(value.item):
        return encode(value.item(), blobs)
    raise TypeError(f"{type(value).__name__} is not a known session input type")


class RestoreProblem(Exception):
    """Part of a stored session could not be restored (a missing or changed file); the
    message says what is missing and what to do."""


def decode(data: Any, read_blob: Callable[[str], bytes | None]) -> Any:
    """The value :func:`encode` wrote.

    Parameters
    ----------
    data : object
        JSON data from :func:`encode`.
    read_blob : callable
        SHA-256 -> bytes, or ``None`` when the store no longer has them.

    Raises
    ------
    RestoreProblem
        A table or model file is missing from the store, does not match its digest, or
        no longer parses.
    """
    if isinstance(data, list):
        return [decode(v, read_blob) for v in data]
    if not isinstance(data, dict):
        return data
    if _DICT in data:
        return {k: decode(v, read_blob) for k, v in data[_DICT].items()}
    if _TUPLE in data:
        return tuple(decode(v, read_blob) for v in data[_TUPLE])
    if _TABLE in data:
        meta = data[_TABLE]
        raw = _blob(meta["blob"], read_blob, f"the table {meta['name']!r}")
        try:
            table = load_table_bytes(raw, meta["name"], source=meta.get("source", "upload"))
        except HPMKDInputError as exc:
            raise RestoreProblem(f"The stored table {meta['name']!r} no longer reads: {exc} "
                                 "Load it again on the Data & teachers page.") from exc
        if table.digest != meta["digest"]:
            raise RestoreProblem(f"The stored table {meta['name']!r} changed on the server. "
                                 "Load it again on the Data & teachers page.")
        return table
    if _TEACHER in data:
        meta = data[_TEACHER]
        raw = b""
        if meta.get("blob"):
            raw = _blob(meta["blob"], read_blob, f"the model file {meta['filename']!r}")
        return TeacherSource(
            kind=meta["kind"], name=meta["name"], filename=meta.get("filename", ""),
            data=raw, digest=meta.get("digest", ""),
            proba_cols=tuple(meta.get("proba_cols", ())),
            settings=decode(meta.get("settings", {_DICT: {}}), read_blob),
            trusted=bool(meta.get("trusted", False)),
        )
    raise RestoreProblem("The stored session has an entry this version cannot read.")


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _blob(digest: str, read_blob: Callable[[str], bytes | None], what: str) -> bytes:
    raw = read_blob(digest)
    if raw is None or digest_bytes(raw) != digest:
        raise RestoreProblem(
            f"The server no longer holds {what} of this session (its store is size-limited "
            "and drops the oldest sessions first). Load it again on the Data & teachers page."
        )
    return raw
