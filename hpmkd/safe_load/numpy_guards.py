"""Strict stand-ins for the numpy and stdlib reconstructors pickles call.

:mod:`~hpmkd.safe_load.allowlist` maps the real reconstructors' names to these
wrappers, so the unpickler never calls the real functions.  Each wrapper accepts
exactly the arguments genuine pickles use, because the real functions can create
arrays from raw memory or leak uninitialised memory when fed crafted arguments.
``numpy.dtype`` is replaced by :class:`_PendingDType`, and the real dtype is only
built (by :func:`_build_dtype`, through numpy's validating constructor) when its
state arrives.
"""

from __future__ import annotations

import copyreg
from typing import Any, Final

import numpy as np

from hpmkd.safe_load.errors import _require
from hpmkd.safe_load.names import _optional

# -- Safe stand-ins for the low-level reconstructors ------------------------
#
# find_class hands out these wrappers instead of the real numpy/stdlib
# functions.  Each accepts exactly the arguments genuine pickles use, because
# the real functions can create arrays from raw memory or leak uninitialised
# memory when fed crafted arguments.


def _is_dtype(obj: object) -> bool:
    return isinstance(obj, np.dtype)


def _safe_reconstruct(subtype: object, shape: object, typecode: object) -> np.ndarray:
    """``numpy._core.multiarray._reconstruct`` as used by ndarray pickles.

    numpy always pickles ``_reconstruct(ndarray, (0,), b'b')`` followed by a
    BUILD that fills the data; any other shape would hand out uninitialised memory.
    """
    _require(
        subtype is np.ndarray and shape == (0,) and typecode == b"b",
        "a numpy array is reconstructed with unusual arguments",
    )
    return np.ndarray((0,), dtype=np.int8)


_numpy_scalar: Final = _optional("numpy._core.multiarray", "scalar") or _optional(
    "numpy.core.multiarray", "scalar"
)


def _safe_scalar(dtype: object, data: object = None) -> Any:
    """``numpy._core.multiarray.scalar``: a numpy scalar from its raw bytes."""
    _require(
        _is_dtype(dtype)
        and not dtype.hasobject  # type: ignore[union-attr]
        and type(data) is bytes
        and len(data) == dtype.itemsize,  # type: ignore[union-attr]
        "a numpy scalar is rebuilt from data that does not match its type",
    )
    return _numpy_scalar(dtype, data)


def _safe_frombuffer(buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """``numpy._core.numeric._frombuffer`` as used by protocol-5 array pickles.

    Only bytes-like data is accepted (never another array, which could later be
    freed under the new view), and never an object dtype.
    """
    _require(
        type(buf) in (bytes, bytearray)
        and _is_dtype(dtype)
        and not dtype.hasobject  # type: ignore[union-attr]
        and _is_shape(shape)
        and order in ("C", "F"),
        "a numpy array is rebuilt from a buffer with unusual arguments",
    )
    array = np.frombuffer(buf, dtype=dtype)  # type: ignore[call-overload]
    return array.reshape(shape, order=order)  # type: ignore[call-overload]


def _safe_reconstructor(cls: object, base: object, state: object) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1 objects), limited to plain bases.

    With any other base it would call ``base.__new__`` / ``base.__init__`` on
    attacker-chosen arguments (e.g. an uninitialised ndarray).
    """
    _require(
        base in (object, dict, list) and isinstance(cls, type) and issubclass(cls, base),  # type: ignore[arg-type]
        "copyreg._reconstructor is used with an unusual base class",
    )
    return copyreg._reconstructor(cls, base, state)  # type: ignore[arg-type]


def _safe_latin1_encode(
    text: object, encoding: object = "latin1", errors: object = "strict"
) -> bytes:
    """``_codecs.encode`` as used by protocol-2 pickles for ``bytes`` values.

    Only the latin-1 codec is allowed: the real function looks codecs up by
    name, and third-party codec search functions are not something to expose.
    """
    _require(
        type(text) is str and encoding in ("latin1", "latin-1") and errors == "strict",
        "_codecs.encode is used with an unusual codec",
    )
    return text.encode("latin-1")  # type: ignore[union-attr]


class _PendingDType:
    """Placeholder for a numpy dtype until its state (BUILD) arrives.

    numpy's own ``dtype.__setstate__`` trusts its input: a crafted state can
    declare object fields while clearing the "has objects" flag, after which
    raw bytes are read as object pointers.  So ``numpy.dtype`` in a pickle
    returns this placeholder; at BUILD time the real dtype is *constructed* with
    numpy's validating public constructor and must reproduce the pickled state
    exactly.  Until then the placeholder cannot be used as a dtype.
    """

    __slots__ = ("real", "spec")

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.real: np.dtype | None = None


def _pending_dtype(spec: object, align: object = False, copy: object = True) -> _PendingDType:
    """Stand-in for ``numpy.dtype`` as called by dtype pickles: ``dtype('f8', False, True)``."""
    _require(
        type(spec) is str and type(align) is bool and type(copy) is bool,
        "numpy.dtype is called with unusual arguments",
    )
    return _PendingDType(spec)  # type: ignore[arg-type]


def _is_shape(shape: object) -> bool:
    return type(shape) is tuple and all(type(dim) is int and dim >= 0 for dim in shape)


_MAX_DTYPE_DEPTH: Final = 8  # genuine model dtypes nest at most once or twice


def _dtype_depth(dtype: np.dtype, limit: int = _MAX_DTYPE_DEPTH) -> int:
    """Nesting depth of a structured/subarray dtype, giving up past ``limit``."""
    if limit <= 0:
        return _MAX_DTYPE_DEPTH + 1
    children: list[np.dtype] = []
    if dtype.fields is not None:
        children = [field[0] for field in dtype.fields.values()]
    elif dtype.subdtype is not None:
        children = [dtype.subdtype[0]]
    return 1 + max((_dtype_depth(child, limit - 1) for child in children), default=0)


def _build_dtype(spec: str, state: object) -> np.dtype:
    """Construct the dtype a pickle describes, refusing anything numpy would not produce."""
    _require(type(state) is tuple and len(state) in (8, 9), "a numpy dtype has a malformed state")
    version, endian, subarray, names, fields, elsize, alignment, flags = state[:8]  # type: ignore[index,misc]
    _require(
        version in (3, 4)
        and endian in ("<", ">", "|", "=")
        and type(elsize) is int
        and type(alignment) is int
        and type(flags) is int,
        "a numpy dtype has a malformed state",
    )
    if names is not None:
        _require(
            type(names) is tuple
            and all(type(n) is str for n in names)
            and type(fields) is dict
            and subarray is None,
            "a structured numpy dtype has malformed fields",
        )
        entries = [fields.get(name) for name in names]  # type: ignore[union-attr]
        _require(
            all(
                type(e) is tuple
                and len(e) in (2, 3)
                and _is_dtype(e[0])
                and type(e[1]) is int
                and (len(e) == 2 or e[2] is None or type(e[2]) is str)
                for e in entries
            ),
            "a structured numpy dtype has malformed fields",
        )
        description: dict[str, Any] = {
            "names": list(names),
            "formats": [e[0] for e in entries],  # type: ignore[index]
            "offsets": [e[1] for e in entries],  # type: ignore[index]
            "itemsize": elsize,
        }
        titles = [e[2] if len(e) == 3 else None for e in entries]  # type: ignore[arg-type,index]
        if any(title is not None for title in titles):
            description["titles"] = titles
        # 0x80 is NPY_ALIGNED_STRUCT: the struct was declared with align=True.
        candidate = np.dtype(description, align=bool(flags & 0x80))
    elif subarray is not None:
        _require(
            type(subarray) is tuple
            and len(subarray) == 2
            and _is_dtype(subarray[0])
            and _is_shape(subarray[1]),
            "a numpy sub-array dtype is malformed",
        )
        candidate = np.dtype((subarray[0], subarray[1]))
    else:
        candidate = np.dtype(spec)
        if len(state) == 9 and candidate.kind in "mM":  # type: ignore[arg-type]
            meta = state[8]  # type: ignore[index]
            _require(
                type(meta) is tuple
                and len(meta) == 2
                and type(meta[1]) is tuple
                and len(meta[1]) == 4
                and type(meta[1][0]) is bytes
                and type(meta[1][1]) is int,
                "a numpy datetime dtype is malformed",
            )
            unit, count = meta[1][0].decode("ascii"), meta[1][1]
            if unit != "generic":
                candidate = np.dtype(f"{spec}[{count if count != 1 else ''}{unit}]")
        if endian in ("<", ">") and candidate.byteorder != "|":
            candidate = candidate.newbyteorder(endian)
    _require(
        _dtype_depth(candidate) <= _MAX_DTYPE_DEPTH,
        "a numpy dtype is nested unusually deeply",
    )
    # The decisive check: what numpy would pickle for the dtype we built must be
    # exactly what the file contains (this catches forged flags, sizes, fields).
    _require(candidate.__reduce__()[2] == state, "a numpy dtype has an inconsistent state")
    return candidate
