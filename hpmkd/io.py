"""Reading tables from disk with clear errors: CSV (delimiter and encoding detected) or
Parquet."""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections import Counter
from pathlib import Path

import pandas as pd

from hpmkd.errors import HPMKDInputError

_SAMPLE_BYTES = 64 * 1024
_DELIMITERS = ",;\t|"
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame.

    CSV: encoding detected among UTF-8 (with or without BOM) and Latin-1; delimiter among
    ``, ; TAB |``. Duplicate column names are refused (pandas would rename them silently).

    Raises
    ------
    HPMKDInputError
        Missing, empty, binary, unparsable file, header without rows, duplicate columns.
    """
    path = Path(path)
    if not path.exists():
        raise HPMKDInputError(f"Data file {str(path)!r} does not exist. Check the path.")
    if path.is_dir():
        raise HPMKDInputError(
            f"Data path {str(path)!r} is a folder, not a file. Give the CSV or Parquet file "
            "inside it."
        )
    if not os.access(path, os.R_OK):
        raise HPMKDInputError(
            f"Data file {str(path)!r} cannot be read (permission denied). Check its "
            "permissions, or copy it somewhere you can read."
        )
    if path.stat().st_size == 0:
        raise HPMKDInputError(f"Data file {path.name!r} is empty (0 bytes).")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise HPMKDInputError(
                f"Data file {path.name!r} could not be read as Parquet: {exc}."
            ) from exc
        _check_duplicate_columns([str(c) for c in frame.columns], path.name)
        return frame
    with path.open("rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    return _read_csv_bytes(path, sample, path.name)


def read_table_bytes(data: bytes, filename: str) -> pd.DataFrame:
    """Read an uploaded CSV or Parquet file from memory (see :func:`read_table`)."""
    if not data:
        raise HPMKDInputError(f"Data file {filename!r} is empty (0 bytes).")
    if filename.lower().endswith(PARQUET_SUFFIXES):
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:
            raise HPMKDInputError(
                f"Data file {filename!r} could not be read as Parquet: {exc}."
            ) from exc
        _check_duplicate_columns([str(c) for c in frame.columns], filename)
        return frame
    return _read_csv_bytes(io.BytesIO(data), data[:_SAMPLE_BYTES], filename)


def _read_csv_bytes(source: Path | io.BytesIO, sample: bytes, name: str) -> pd.DataFrame:
    if b"\x00" in sample or sample.startswith(b"PAR1"):
        raise HPMKDInputError(
            f"Data file {name!r} looks binary, not CSV text. Export the table as CSV "
            "(comma or semicolon separated) or Parquet."
        )
    encoding = _detect_encoding(sample)
    text = sample.decode(encoding, errors="replace")
    if _control_share(text) > 0.02:
        raise HPMKDInputError(
            f"Data file {name!r} looks binary, not CSV text. Export the table as CSV "
            "(comma or semicolon separated) or Parquet."
        )
    delimiter = _detect_delimiter(text)
    # The whole header record, read from the source itself: a header longer than the
    # sample (thousands of columns) would otherwise be cut, and pandas renames duplicates
    # ('a', 'a' -> 'a', 'a.1') silently.
    try:
        header = _header_record(source, encoding, delimiter)
    except csv.Error as exc:
        raise HPMKDInputError(
            f"The header row of data file {name!r} could not be read as CSV: {exc}. Check "
            "the quoting of the column names."
        ) from exc
    if not header or all(not h.strip() for h in header):
        raise HPMKDInputError(f"Data file {name!r} has no header row with column names.")
    _check_duplicate_columns([h.strip() for h in header], name)
    if isinstance(source, io.BytesIO):
        source.seek(0)
    try:
        frame = pd.read_csv(source, sep=delimiter, encoding=encoding, low_memory=False)
    except UnicodeDecodeError:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        # The sample was valid UTF-8 but a later byte is not: the file is Latin-1.
        frame = pd.read_csv(source, sep=delimiter, encoding="latin-1", low_memory=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise HPMKDInputError(
            f"Data file {name!r} could not be parsed as CSV (delimiter {delimiter!r}): "
            f"{str(exc).strip()}. Check that every row has the same number of fields."
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise HPMKDInputError(f"Data file {name!r} has no columns.") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise HPMKDInputError(
            f"Data file {name!r} has a header but no data rows. Add rows below the header."
        )
    return frame


def _detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    # A sample may cut a multi-byte character at its end; ignore up to 3 trailing bytes.
    for cut in range(4):
        try:
            sample[: len(sample) - cut].decode("utf-8")
            return "utf-8"
        except UnicodeDecodeError as exc:
            if exc.start < len(sample) - 4:
                break
    return "latin-1"


def _detect_delimiter(text: str) -> str:
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] > 0 else ","


def _header_record(source: Path | io.BytesIO, encoding: str, delimiter: str) -> list[str]:
    """The first CSV record of ``source``, however long (quoted line breaks included)."""
    if isinstance(source, io.BytesIO):
        source.seek(0)
        wrapper = io.TextIOWrapper(source, encoding=encoding, errors="replace", newline="")
        try:
            return _first_record(wrapper, delimiter)
        finally:
            wrapper.detach()  # keep the BytesIO open for pandas
            source.seek(0)
    with source.open(encoding=encoding, errors="replace", newline="") as handle:
        return _first_record(handle, delimiter)


def _first_record(handle: io.TextIOBase, delimiter: str) -> list[str]:
    return next(csv.reader(handle, delimiter=delimiter), [])


def _control_share(text: str) -> float:
    if not text:
        return 0.0
    control = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\r\n\t") or ch == "\ufffd")
    return control / len(text)


def _check_duplicate_columns(columns: list[str], name: str) -> None:
    dupes = [c for c, n in Counter(columns).items() if n > 1]
    if dupes:
        raise HPMKDInputError(
            f"Data file {name!r} has duplicate column name(s): {', '.join(map(repr, dupes))}. "
            "Rename them so every column name is unique."
        )
