"""The restricted unpickler and the reading of ``.joblib`` / ``.pkl`` / ``.pickle`` files.

One concept (over 500 lines on purpose): every guarded opcode handler of the restricted
unpickler sits in one class, where a reviewer sees all the ways a file can reach memory.

Built on joblib's own reader (so joblib compression and joblib's out-of-band numpy
arrays work, and plain ``pickle.dump`` files load too).  ``find_class`` only hands
out what :mod:`~hpmkd.safe_load.allowlist` admits, and the opcodes that can touch
memory directly (object creation, BUILD, container mutation, memo reads, the
extension registry) are re-dispatched through guarded handlers that use
:mod:`~hpmkd.safe_load.numpy_guards` and :mod:`~hpmkd.safe_load.state_checks`.

A name that is not admitted becomes an inert :class:`~hpmkd.safe_load.names._Unresolved`
instead of an immediate refusal, and an object of such a class (NEWOBJ) an inert
:class:`~hpmkd.safe_load.names._UnresolvedObject` whose state is dropped.  Calling
either is refused on the spot (naming it); a file that merely *holds* one is refused
once loading ends, by :func:`~hpmkd.safe_load.graph_checks.check_loaded`, which can then
say where (``step "prep" is a FunctionTransformer that calls "mymodule.clean"``).
Nothing is imported for such a name.  Dotted names are refused at once.

Everything the unpickler reads goes through a :class:`_BoundedReader`: at most
``max_bytes`` bytes after decompression (a 1 MB file that inflates to gigabytes is
refused while it inflates), and a length field larger than what remains (a 900-byte
file announcing a 1.6 GB string or array) is refused before anything is allocated.
"""

from __future__ import annotations

import _compat_pickle
import bz2
import contextlib
import functools
import io
import lzma
import math
import os
import pickle
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import joblib.compressor
import lightgbm
import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from joblib.numpy_pickle_utils import _detect_compressor

from hpmkd.safe_load.allowlist import (
    _ALLOW_TABLE,
    _BSPLINE_CLASS,
    _BUILDABLE,
    _NEVER_CALL,
    _NEVER_NEW,
    _TREE_CLASS,
    _TREE_PREDICTOR_CLASS,
)
from hpmkd.safe_load.errors import (
    _ADVICE,
    ModelFileError,
    UnsafeModelError,
    _file_error,
    _Refused,
    _require,
)
from hpmkd.safe_load.graph_checks import check_loaded
from hpmkd.safe_load.lightgbm_text import _check_booster_state
from hpmkd.safe_load.names import _Unresolved, _UnresolvedObject
from hpmkd.safe_load.numpy_guards import _build_dtype, _is_dtype, _PendingDType
from hpmkd.safe_load.state_checks import (
    _check_array_state,
    _check_bspline_state,
    _check_partial_state,
    _check_tree_predictor_state,
    _check_tree_state,
    family_checks_enabled,
)

# Refused names kept per file: far more than any file needs to show what it wanted.
_MAX_UNRESOLVED = 1000
#: Reads larger than this are done in pieces, so only data that exists is allocated.
_CHUNK: Final = 16 * 1024 * 1024
#: Longest line a pickle text opcode may have (module and class names, short numbers).
_MAX_LINE: Final = 1024 * 1024


class _TooLarge(_Refused):
    """The file unpacks to more than the limit allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"it unpacks to more than {limit / 1024**2:,.0f} MB, four times the largest "
            "teacher file this installation accepts (HPMKD_UPLOAD_LIMIT_MB); genuine model "
            "files do not expand that much",
            crafted=False,
            advice="If it is a genuine model, save it uncompressed or ask the administrator "
            "to raise HPMKD_UPLOAD_LIMIT_MB.",
        )
        self.limit = limit


class _BoundedReader:
    """A read-only view of the (decompressed) pickle stream that counts what it hands out.

    Parameters
    ----------
    stream : file object
        joblib's decompressing reader, or the raw file.
    limit : int
        Bytes the whole stream may unpack to.
    known_size : int or None
        Bytes left in an uncompressed file: a longer read is a truncated file.
    """

    def __init__(self, stream: Any, limit: int, known_size: int | None) -> None:
        self._stream = stream
        self.limit = limit
        self.used = 0
        self._known = known_size

    def remaining(self) -> int:
        """Bytes the stream may still hand out."""
        left = self.limit - self.used
        return left if self._known is None else min(left, self._known - self.used)

    def _account(self, size: int) -> None:
        if size > self.remaining():
            if self._known is not None and size > self._known - self.used:
                raise EOFError("the file ends before the data it announces (truncated)")
            raise _TooLarge(self.limit)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.remaining()
        self._account(size)
        if size <= _CHUNK:
            data = self._stream.read(size)
        else:  # piecewise: a huge length field only costs what the file really holds
            pieces = bytearray()
            while len(pieces) < size:
                piece = self._stream.read(min(_CHUNK, size - len(pieces)))
                if not piece:
                    break
                pieces += piece
                if self.used + len(pieces) > self.limit:
                    raise _TooLarge(self.limit)
            data = bytes(pieces)
        self.used += len(data)
        if self.used > self.limit:
            raise _TooLarge(self.limit)
        return data

    def readline(self, size: int = -1) -> bytes:
        line = self._stream.readline(_MAX_LINE)
        self.used += len(line)
        if self.used > self.limit:
            raise _TooLarge(self.limit)
        return line

    def peek(self, size: int = 0) -> bytes:
        return self._stream.peek(size) if hasattr(self._stream, "peek") else b""

_Dispatch = dict[int, Callable[[Any], None]]


class _RestrictedMixin:
    """Opcode handlers shared by the outer (joblib) and nested unpicklers.

    Relies on ``pickle._Unpickler`` (the pure-Python unpickler joblib uses),
    whose opcode handlers live in a per-class ``dispatch`` table we can extend.
    """

    stack: list[Any]
    proto: int
    _display_name: str
    _unresolved: list[_Unresolved]

    def find_class(self, module: str, name: str) -> Any:
        """Return the allowed object for ``(module, name)``, else an inert stand-in.

        Dotted names are refused at once; any other name that is not admitted becomes
        an :class:`_Unresolved` that can be held but never called or built.
        """
        sys.audit("pickle.find_class", module, name)  # as the standard unpickler does
        # Python-2 style names ("__builtin__", "copy_reg") that protocol 2 writes,
        # mapped exactly as the standard unpickler maps them.
        if self.proto < 3:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        # A dot in the name would be resolved attribute by attribute
        # ("sklearn" + "os.system"); such names are never on the list.
        if "." in name:
            raise _name_error(self._display_name, module, name)
        obj = _ALLOW_TABLE.get((module, name))
        if obj is not None:
            return obj
        if len(self._unresolved) >= _MAX_UNRESOLVED:
            raise _name_error(self._display_name, module, name)
        stand_in = _Unresolved(module, name)
        self._unresolved.append(stand_in)
        return stand_in

    def _refuse_unresolved(self, obj: object) -> None:
        """Calling a refused name (or an object standing for one): refuse now, naming it."""
        if type(obj) is _UnresolvedObject:
            obj = obj.cls
        if type(obj) is _Unresolved:
            raise _name_error(self._display_name, obj.module, obj.name)

    def persistent_load(self, pid: Any) -> Any:
        """Model files never use persistent ids; refuse them."""
        raise _Refused("it uses pickle persistent ids")

    def _load_ext(self) -> None:
        # The copyreg extension registry has a process-wide cache that would hand
        # out objects without going through find_class; model files never use it.
        raise _Refused("it uses the copyreg extension registry")

    # -- object creation ----------------------------------------------------

    def _instantiate(self, klass: Any, args: list[Any]) -> None:  # INST and OBJ
        self._refuse_unresolved(klass)
        _require(not any(klass is obj for obj in _NEVER_CALL), _call_msg(klass))
        super()._instantiate(klass, args)  # type: ignore[misc]

    def _load_reduce(self) -> None:
        self._refuse_unresolved(self.stack[-2])
        _require(not any(self.stack[-2] is obj for obj in _NEVER_CALL), _call_msg(self.stack[-2]))
        pickle._Unpickler.dispatch[pickle.REDUCE[0]](self)  # type: ignore[attr-defined]

    def _load_newobj(self) -> None:
        if self._new_unresolved(2):
            return
        self._check_new(self.stack[-2])
        pickle._Unpickler.dispatch[pickle.NEWOBJ[0]](self)  # type: ignore[attr-defined]

    def _load_newobj_ex(self) -> None:
        if self._new_unresolved(3):
            return
        self._check_new(self.stack[-3])
        pickle._Unpickler.dispatch[pickle.NEWOBJ_EX[0]](self)  # type: ignore[attr-defined]

    def _new_unresolved(self, depth: int) -> bool:
        """NEWOBJ of a refused class: an inert stand-in object, its arguments dropped."""
        cls = self.stack[-depth]
        if type(cls) is not _Unresolved:
            return False
        del self.stack[-depth:]
        self.stack.append(_UnresolvedObject(cls))
        return True

    def _check_new(self, cls: Any) -> None:
        self._refuse_unresolved(cls)
        _require(
            isinstance(cls, type) and not any(cls is obj for obj in _NEVER_NEW),
            _call_msg(cls),
        )

    # -- memo: hand out finished dtypes instead of their placeholders --------

    def _resolve_top(self) -> None:
        top = self.stack[-1]
        if type(top) is _PendingDType and top.real is not None:
            self.stack[-1] = top.real

    def _load_get(self) -> None:
        pickle._Unpickler.dispatch[pickle.GET[0]](self)  # type: ignore[attr-defined]
        self._resolve_top()

    def _load_binget(self) -> None:
        pickle._Unpickler.dispatch[pickle.BINGET[0]](self)  # type: ignore[attr-defined]
        self._resolve_top()

    def _load_long_binget(self) -> None:
        pickle._Unpickler.dispatch[pickle.LONG_BINGET[0]](self)  # type: ignore[attr-defined]
        self._resolve_top()

    # -- lengths read from the file: never allocate more than the file can hold --

    def _load_bytearray8(self) -> None:
        # pickle allocates bytearray(length) before reading into it.
        (length,) = struct.unpack("<Q", self.read(8))  # type: ignore[attr-defined]
        reader = getattr(self, "_bounded", None)
        frame = getattr(getattr(self, "_unframer", None), "current_frame", None)
        available = (reader.remaining() if reader is not None else length) + (
            len(frame.getbuffer()) - frame.tell() if frame is not None else 0
        )
        if length > available:
            raise EOFError("the file ends before the data it announces (truncated)")
        self.append(bytearray(self.read(length)))  # type: ignore[attr-defined]

    # -- container mutation: only plain containers ---------------------------
    # (SETITEM on an ndarray, say, would change a node table after it was checked.)

    def _load_append(self) -> None:
        _require(type(self.stack[-2]) is list, "it appends to something that is not a list")
        pickle._Unpickler.dispatch[pickle.APPEND[0]](self)  # type: ignore[attr-defined]

    def _load_appends(self) -> None:
        items = self.pop_mark()  # type: ignore[attr-defined]
        _require(type(self.stack[-1]) is list, "it appends to something that is not a list")
        self.stack[-1].extend(items)

    def _load_setitem(self) -> None:
        _require(isinstance(self.stack[-3], dict), "it sets items on something that is not a dict")
        pickle._Unpickler.dispatch[pickle.SETITEM[0]](self)  # type: ignore[attr-defined]

    def _load_setitems(self) -> None:
        items = self.pop_mark()  # type: ignore[attr-defined]
        target = self.stack[-1]
        _require(isinstance(target, dict), "it sets items on something that is not a dict")
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _load_additems(self) -> None:
        items = self.pop_mark()  # type: ignore[attr-defined]
        _require(type(self.stack[-1]) is set, "it adds items to something that is not a set")
        self.stack[-1].update(items)

    # -- BUILD ----------------------------------------------------------------

    def _build_common(self) -> bool:
        """Validate a BUILD; return True when it was fully handled here."""
        state, inst = self.stack[-1], self.stack[-2]
        if type(inst) is _UnresolvedObject:  # the state of a refused class: dropped
            self.stack.pop()
            return True
        self._refuse_unresolved(inst)
        if type(inst) is _PendingDType:
            _require(inst.real is None, "a numpy dtype is rebuilt twice")
            inst.real = _build_dtype(inst.spec, state)
            self.stack.pop()
            self.stack[-1] = inst.real
            return True
        _require(
            type(inst) in _BUILDABLE,
            f"it sets the state of {_describe(inst)}, which genuine model files never do",
        )
        if type(inst) is np.ndarray:
            _check_array_state(inst, state)
        elif _TREE_CLASS is not None and type(inst) is _TREE_CLASS:
            _check_tree_state(inst, state)
        elif _TREE_PREDICTOR_CLASS is not None and type(inst) is _TREE_PREDICTOR_CLASS:
            _check_tree_predictor_state(state)
        elif _BSPLINE_CLASS is not None and type(inst) is _BSPLINE_CLASS:
            _check_bspline_state(state)
        elif type(inst) is functools.partial:
            _check_partial_state(state)
        elif type(inst) is lightgbm.Booster and family_checks_enabled():
            _check_booster_state(state)  # before LightGBM parses its model string
        return False

    def _load_build(self) -> None:
        if not self._build_common():
            pickle._Unpickler.load_build(self)  # type: ignore[arg-type]


# Modules whose names in a pickle mean the file carries code (lambdas, local functions).
_CODE_PICKLERS = frozenset({"cloudpickle", "dill", "types", "marshal", "copyreg"})


def _name_error(display: str, module: str, name: str) -> UnsafeModelError:
    code = (
        " (the file stores Python code, such as a lambda or a locally defined function, "
        "as cloudpickle and dill do)"
        if module.split(".")[0] in _CODE_PICKLERS
        else ""
    )
    return UnsafeModelError(
        f"Refused to load '{display}': it references '{module}.{name}'{code}, which is not on "
        "the list of classes allowed in model files (nor of the functions they may hold), "
        f"so the file was NOT loaded and nothing in it was run. {_ADVICE}"
    )


def _describe(obj: object) -> str:
    if isinstance(obj, type):
        return f"the class '{obj.__module__}.{obj.__qualname__}'"
    kind = type(obj)
    return f"a '{kind.__module__}.{kind.__qualname__}' object"


def _call_msg(obj: object) -> str:
    return f"it calls {_describe(obj)} directly, which genuine model files never do"


def _install_handlers(dispatch: _Dispatch) -> None:
    """Point the guarded opcodes of a dispatch table at the mixin's handlers."""
    mixin = _RestrictedMixin
    dispatch[pickle.REDUCE[0]] = mixin._load_reduce
    dispatch[pickle.NEWOBJ[0]] = mixin._load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = mixin._load_newobj_ex
    dispatch[pickle.GET[0]] = mixin._load_get
    dispatch[pickle.BINGET[0]] = mixin._load_binget
    dispatch[pickle.LONG_BINGET[0]] = mixin._load_long_binget
    dispatch[pickle.APPEND[0]] = mixin._load_append
    dispatch[pickle.APPENDS[0]] = mixin._load_appends
    dispatch[pickle.SETITEM[0]] = mixin._load_setitem
    dispatch[pickle.SETITEMS[0]] = mixin._load_setitems
    dispatch[pickle.ADDITEMS[0]] = mixin._load_additems
    for opcode in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[opcode[0]] = mixin._load_ext
    dispatch[pickle.BYTEARRAY8[0]] = mixin._load_bytearray8


class _NestedUnpickler(_RestrictedMixin, pickle._Unpickler):  # type: ignore[name-defined,misc]
    """Reads the plain pickle joblib embeds for each object-dtype array."""

    dispatch: _Dispatch = pickle._Unpickler.dispatch.copy()  # type: ignore[attr-defined]
    _install_handlers(dispatch)
    dispatch[pickle.BUILD[0]] = _RestrictedMixin._load_build

    def __init__(self, file: Any, display_name: str, unresolved: list[_Unresolved]) -> None:
        super().__init__(file)
        self._display_name = display_name
        self._unresolved = unresolved
        self._bounded = file if isinstance(file, _BoundedReader) else None


class _RestrictedUnpickler(_RestrictedMixin, NumpyUnpickler):
    """joblib's unpickler with the allow list and the opcode checks above."""

    dispatch: _Dispatch = NumpyUnpickler.dispatch.copy()
    _install_handlers(dispatch)

    def __init__(self, file_handle: Any, display_name: str) -> None:
        super().__init__("", file_handle, ensure_native_byte_order=True, mmap_mode=None)
        self._display_name = display_name
        self._unresolved = []
        self._bounded = file_handle if isinstance(file_handle, _BoundedReader) else None

    def _load_joblib_build(self) -> None:
        if self._build_common():
            return
        pickle._Unpickler.load_build(self)  # type: ignore[arg-type]
        # joblib's NumpyUnpickler.load_build swaps an array wrapper for the array
        # read from the stream; we do the same, but read object arrays with our
        # own restricted unpickler (joblib's nested one would skip these checks).
        if isinstance(self.stack[-1], NumpyArrayWrapper):
            wrapper = self.stack.pop()
            _require(_is_dtype(wrapper.dtype), "a joblib array has no valid dtype")
            if wrapper.dtype.hasobject:
                nested = _NestedUnpickler(self.file_handle, self._display_name, self._unresolved)
                array = nested.load()
                _require(
                    type(array) is np.ndarray and array.dtype.hasobject,
                    "a joblib object array is malformed",
                )
            else:
                # joblib allocates the whole array before reading it: a small file
                # must not announce a huge one.
                size = math.prod(int(d) for d in wrapper.shape) * wrapper.dtype.itemsize
                reader = self.file_handle
                _require(type(wrapper.shape) is tuple, "a joblib array has no valid shape")
                if isinstance(reader, _BoundedReader):
                    reader._account(size)
                array = wrapper.read(self, self.ensure_native_byte_order)
            self.stack.append(array)

    dispatch[pickle.BUILD[0]] = _load_joblib_build


def _sniff(head: bytes) -> str:
    """Name what a non-pickle file looks like, to make the error actionable."""
    if head.startswith(b"PK"):
        return "it is a zip archive (a .skops file? then keep the .skops extension)"
    if head.startswith((b"tree\n", b"tree\r\n")):
        return "it is a LightGBM text model (give it a .txt extension)"
    if head[:1] in (b"{", b"["):
        return "it looks like JSON (an XGBoost model? then give it a .json extension)"
    is_text = all(32 <= byte < 127 or byte in b"\r\n\t" for byte in head)
    if is_text and any(sep in head.split(b"\n", 1)[0] for sep in (b",", b";", b"\t")):
        return "it looks like a table (CSV text), not a saved model"
    if head[:1] in (b"(", b"]", b"}", b"c", b"N"):  # how protocol 0 and 1 pickles start
        return "it uses pickle protocol 0 or 1, which is not supported"
    if is_text:
        return "it looks like a text file, not a saved model"
    return "it is not a pickle or joblib file"


class _Inflater(io.RawIOBase):
    """A compressed stream read in bounded steps: each call inflates at most what was
    asked for (joblib's readers inflate whole blocks, and on data after the end of the
    stream loop with a doubling buffer).
    """

    def __init__(self, raw: Any, compressor: str) -> None:
        self._raw = raw
        self._zlib = compressor in ("zlib", "gzip")
        if compressor == "zlib":
            self._inflate: Any = zlib.decompressobj(zlib.MAX_WBITS)
        elif compressor == "gzip":
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif compressor == "bz2":
            self._inflate = bz2.BZ2Decompressor()
        elif compressor in ("lzma", "xz"):
            self._inflate = lzma.LZMADecompressor(
                lzma.FORMAT_ALONE if compressor == "lzma" else lzma.FORMAT_XZ)
        else:  # lz4 (its presence was checked)
            import lz4.frame

            self._inflate = lz4.frame.LZ4FrameDecompressor()

    def readable(self) -> bool:
        return True

    def _end(self) -> int:
        if getattr(self._inflate, "unused_data", b"") or self._raw.read(1):
            raise ValueError("there is data after the end of its compressed stream")
        return 0

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        while True:
            if self._zlib and self._inflate.unconsumed_tail:
                piece = self._inflate.decompress(self._inflate.unconsumed_tail, want)
            elif self._inflate.eof:
                return self._end()
            elif self._zlib or self._inflate.needs_input:
                data = self._raw.read(64 * 1024)
                if not data:
                    raise EOFError("the compressed data ends early (truncated)")
                piece = self._inflate.decompress(data, want)
            else:
                piece = self._inflate.decompress(b"", want)
            if piece:
                buffer[: len(piece)] = piece
                return len(piece)


@contextlib.contextmanager
def _open_stream(raw: Any, compressor: str) -> Iterator[Any]:
    if compressor == "not-compressed":
        yield raw
    else:
        yield io.BufferedReader(_Inflater(raw, compressor), buffer_size=1024 * 1024)


def _load_pickle(path: Path, display: str, max_bytes: int) -> object:
    with open(path, "rb") as raw:
        compressor = _detect_compressor(raw)
        if compressor == "compat":
            raise _file_error(
                display,
                "it was written by joblib older than 0.10, whose format is not supported",
                "Load it in a trusted environment and save it again with a current joblib.",
            )
        if compressor == "lz4" and getattr(joblib.compressor, "lz4", None) is None:
            raise _file_error(
                display,
                "it is compressed with lz4, which is not installed here",
                "Install it with pip install lz4, or save the model again with "
                "joblib.dump(model, path, compress=3) (zlib).",
            )
        # joblib's detection of zlib/gzip/bz2/lzma/xz/lz4; our own bounded decompression.
        with _open_stream(raw, compressor) as stream:
            head = stream.peek(2)[:2] if hasattr(stream, "peek") else b""
            if len(head) < 2 or head[0] != pickle.PROTO[0] or not 2 <= head[1] <= 5:
                sample = stream.peek(256)[:256] if hasattr(stream, "peek") else b""
                if len(head) == 2 and head[0] == pickle.PROTO[0]:
                    problem = f"it uses unsupported pickle protocol {head[1]}"
                else:
                    problem = _sniff(sample)
                raise _file_error(
                    display,
                    problem,
                    "Save the model with joblib.dump or pickle.dump (protocol 2 or newer).",
                )
            # Decompressed data is bounded by max_bytes; an uncompressed file by its size.
            size = os.fstat(raw.fileno()).st_size
            if compressor == "not-compressed":
                reader = _BoundedReader(stream, max(size, max_bytes), size)
            else:
                reader = _BoundedReader(stream, max_bytes, None)
            unpickler = _RestrictedUnpickler(reader, display)
            try:
                loaded = unpickler.load()
            except (UnsafeModelError, ModelFileError):
                raise
            except Exception as exc:
                # A file that names something we refuse and then breaks is refused for
                # that name: the name is what the user can act on.
                if unpickler._unresolved:
                    first = unpickler._unresolved[0]
                    raise _name_error(display, first.module, first.name) from exc
                raise
    check_loaded(loaded, unpickler._unresolved)
    return loaded
