"""Validation of LightGBM text models before LightGBM parses them.

LightGBM's C++ parser trusts its input: ``tree_sizes`` offsets are added to the buffer
without a bound, a tree line without ``=`` is scanned past the end of the string, array
fields are read with the count ``num_leaves`` claims, child indices are followed without a
cycle check and split features index a row buffer of ``max_feature_idx + 1`` values. A
file cut short by an incomplete upload, or a crafted one, therefore aborts the process,
reads out of bounds or loops forever. :func:`check_lightgbm_text` re-parses the text the
way LightGBM does (header lines, then ``Tree=`` blocks read sequentially) and checks
every field LightGBM would trust:

- the header: ``num_class``, ``num_tree_per_iteration`` (equal), ``max_feature_idx``,
  ``feature_names`` and ``feature_infos`` of that many entries, a classification
  ``objective`` whose ``num_class`` matches;
- every tree: at most 22 ``key=value`` lines ended by a blank line, ``num_leaves`` and
  every array of exactly the length LightGBM will read, split features in
  ``[0, max_feature_idx]``, child indices forming one tree (children after their parent,
  each node and leaf reached once: no cycle, no out-of-range node), categorical splits
  within ``cat_boundaries`` and ``cat_threshold``, linear-leaf features in range;
- ``end of trees`` after the last tree (else the file is truncated), and a
  ``parameters:`` block of ``[name: value]`` lines closed by ``end of parameters``
  (LightGBM splits each at ``:`` and reads the second part unchecked).

It returns the text LightGBM should be given: ``\\n`` line endings and without the
``tree_sizes`` line, so LightGBM parses the trees one after another exactly as checked
(it never jumps to offsets the file chose).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import numpy as np

from hpmkd.safe_load.errors import _Refused

#: LightGBM reads at most this many lines of one tree (``Tree::Tree(const char*)``).
_MAX_TREE_LINES: Final = 22
#: LightGBM's own limit on leaves per tree.
_MAX_LEAVES: Final = 131072
#: More classes than any tabular teacher has; bounds the size of every prediction.
_MAX_CLASSES: Final = 10000
_CLASSIFICATION_OBJECTIVES: Final = frozenset(
    {"binary", "multiclass", "multiclassova", "cross_entropy", "cross_entropy_lambda"}
)
_TREE_KEYS: Final = frozenset(
    {
        "num_leaves", "num_cat", "split_feature", "split_gain", "threshold",
        "decision_type", "left_child", "right_child", "leaf_value", "leaf_weight",
        "leaf_count", "internal_value", "internal_weight", "internal_count",
        "cat_boundaries", "cat_threshold", "is_linear", "shrinkage", "leaf_const",
        "num_features", "leaf_features", "leaf_coeff",
    }
)
_INTS: Final = re.compile(r"-?[0-9]{1,10}(?: -?[0-9]{1,10})*")
_INT: Final = re.compile(r"-?[0-9]{1,10}")
_PARAMETER: Final = re.compile(r"\[[A-Za-z0-9_]+: .*\]")


class _TruncatedModel(_Refused):
    """The text ends where a complete model would go on: an incomplete upload or copy."""

    def __init__(self, what: str) -> None:
        super().__init__(what, crafted=False)


class _NotAClassifierModel(_Refused):
    """The text is not a LightGBM model, or a LightGBM model that is not a classifier."""

    def __init__(self, what: str) -> None:
        super().__init__(what, crafted=False)


def _int(value: str, what: str) -> int:
    if not _INT.fullmatch(value):
        raise _Refused(f"its {what} is {value[:40]!r}, not a whole number")
    return int(value)


def _ints(value: str, count: int, what: str) -> np.ndarray:
    """Exactly ``count`` whole numbers separated by blanks."""
    tokens = value.split()
    if count == 0:
        if tokens:
            raise _Refused(f"its {what} has values where none are expected")
        return np.zeros(0, dtype=np.int64)
    if not _INTS.fullmatch(" ".join(tokens)):
        raise _Refused(f"its {what} is not a list of whole numbers")
    values = np.array(tokens, dtype=np.int64)
    if values.shape[0] != count:
        raise _Refused(f"its {what} has {values.shape[0]} values where {count} are expected")
    return values


def _count(value: str, count: int, what: str) -> list[str]:
    """Exactly ``count`` numbers (any notation LightGBM writes) separated by blanks."""
    tokens = value.split()
    if len(tokens) != count:
        raise _Refused(f"its {what} has {len(tokens)} values where {count} are expected")
    return tokens


def _header(lines: list[str]) -> tuple[dict[str, str], int]:
    """Header ``key=value`` pairs and the index of the first ``Tree=`` line."""
    values: dict[str, str] = {}
    for index, line in enumerate(lines):
        if not line:
            continue
        if line.startswith("Tree="):
            return values, index
        key, sep, value = line.partition("=")
        if sep and "=" in value and key != "feature_names":
            raise _Refused(f"its header line {line[:60]!r} has more than one '='")
        values[key] = value
    return values, len(lines)


def _check_objective(objective: str, num_class: int) -> None:
    tokens = objective.split(" ")
    name = tokens[0]
    if name not in _CLASSIFICATION_OBJECTIVES:
        raise _NotAClassifierModel(
            f"its objective is {name[:40]!r}, not a classification objective "
            f"({', '.join(sorted(_CLASSIFICATION_OBJECTIVES))}), so it is not a classifier"
        )
    for token in tokens[1:]:
        key, _, value = token.partition(":")
        if key == "num_class" and _int(value, "objective num_class") != num_class:
            raise _Refused(
                f"its objective says num_class:{value} but the model has {num_class} classes"
            )
        if key == "sigmoid":
            try:
                sigmoid = float(value)
            except ValueError:
                sigmoid = float("nan")
            if not (np.isfinite(sigmoid) and sigmoid > 0):
                raise _Refused(f"its objective has sigmoid:{value[:20]}")
    if name == "binary" and num_class != 1:
        raise _Refused(f"it is a binary model with num_class={num_class}")


def _check_children(left: np.ndarray, right: np.ndarray, n_leaves: int, where: str) -> None:
    """Child indices form one binary tree: internal children come after their parent,
    every internal node but the root and every leaf has exactly one parent."""
    n_internal = n_leaves - 1
    index = np.arange(n_internal)
    children = np.concatenate([left, right])
    parents = np.concatenate([index, index])
    internal = children >= 0
    if np.any(internal & ((children <= parents) | (children >= n_internal))):
        raise _Refused(f"{where} has a child index that points back up the tree or past its "
                       f"{n_internal} internal nodes (a cycle or an out-of-range node)")
    leaves = ~children[~internal]
    if np.any((leaves < 0) | (leaves >= n_leaves)):
        raise _Refused(f"{where} points to a leaf outside its {n_leaves} leaves")
    if not (np.array_equal(np.sort(children[internal]), np.arange(1, n_internal))
            and np.array_equal(np.sort(leaves), np.arange(n_leaves))):
        raise _Refused(f"{where} reaches a node or leaf twice, or never")


def _check_tree(fields: dict[str, str], n_features: int, where: str) -> None:
    unknown = sorted(set(fields) - _TREE_KEYS)
    if unknown:
        raise _Refused(f"{where} has the unknown field(s) {', '.join(unknown)[:80]}")
    for required in ("num_leaves", "num_cat", "leaf_value"):
        if required not in fields:
            raise _Refused(f"{where} has no {required}")
    n_leaves = _int(fields["num_leaves"], f"{where} num_leaves")
    n_cat = _int(fields["num_cat"], f"{where} num_cat")
    if not 1 <= n_leaves <= _MAX_LEAVES or not 0 <= n_cat < max(n_leaves, 1):
        raise _Refused(f"{where} has num_leaves={n_leaves}, num_cat={n_cat}")
    _count(fields["leaf_value"], n_leaves, f"{where} leaf_value")
    linear = _int(fields.get("is_linear", "0"), f"{where} is_linear")
    if linear not in (0, 1):
        raise _Refused(f"{where} has is_linear={linear}")
    for key in ("leaf_weight", "leaf_count"):
        if key in fields:
            _count(fields[key], n_leaves, f"{where} {key}")
    if n_leaves == 1 and not linear:
        return
    n_internal = n_leaves - 1
    for key in ("left_child", "right_child", "split_feature", "threshold"):
        if key not in fields:
            raise _Refused(f"{where} has no {key}")
    left = _ints(fields["left_child"], n_internal, f"{where} left_child")
    right = _ints(fields["right_child"], n_internal, f"{where} right_child")
    feature = _ints(fields["split_feature"], n_internal, f"{where} split_feature")
    thresholds = _count(fields["threshold"], n_internal, f"{where} threshold")
    for key in ("split_gain", "internal_value", "internal_weight", "internal_count"):
        if key in fields:
            _count(fields[key], n_internal, f"{where} {key}")
    decision = (
        _ints(fields["decision_type"], n_internal, f"{where} decision_type")
        if "decision_type" in fields else np.zeros(n_internal, dtype=np.int64)
    )
    if n_internal and np.any((feature < 0) | (feature >= n_features)):
        bad = int(feature[(feature < 0) | (feature >= n_features)][0])
        raise _Refused(f"{where} splits on feature {bad}, but the model has {n_features} "
                       "features (an out-of-range read)")
    if np.any((decision < 0) | (decision > 11) | (((decision >> 2) & 3) == 3)):
        raise _Refused(f"{where} has an invalid decision_type")
    if n_internal:
        _check_children(left, right, n_leaves, where)
    _check_categorical(fields, decision, thresholds, n_cat, where)
    if linear:
        _check_linear(fields, n_leaves, n_features, where)


def _check_categorical(
    fields: dict[str, str], decision: np.ndarray, thresholds: list[str], n_cat: int, where: str
) -> None:
    categorical = (decision & 1) == 1
    if n_cat == 0:
        if np.any(categorical):
            raise _Refused(f"{where} has a categorical split but num_cat=0")
        return
    if "cat_boundaries" not in fields or "cat_threshold" not in fields:
        raise _Refused(f"{where} has num_cat={n_cat} but no cat_boundaries/cat_threshold")
    bounds = _ints(fields["cat_boundaries"], n_cat + 1, f"{where} cat_boundaries")
    if bounds[0] != 0 or np.any(np.diff(bounds) < 0):
        raise _Refused(f"{where} has cat_boundaries that do not increase from 0")
    words = _count(fields["cat_threshold"], int(bounds[-1]), f"{where} cat_threshold")
    if words and not _INTS.fullmatch(" ".join(words)):
        raise _Refused(f"{where} has a cat_threshold that is not whole numbers")
    for position in np.flatnonzero(categorical):
        try:
            value = float(thresholds[position])
        except ValueError:
            value = float("nan")
        if not (value.is_integer() and 0 <= value < n_cat):
            raise _Refused(f"{where} has a categorical split pointing outside its {n_cat} "
                           "category sets")


def _check_linear(fields: dict[str, str], n_leaves: int, n_features: int, where: str) -> None:
    if "leaf_const" in fields:
        _count(fields["leaf_const"], n_leaves, f"{where} leaf_const")
    if "num_features" not in fields:
        return
    per_leaf = _ints(fields["num_features"], n_leaves, f"{where} num_features")
    if np.any(per_leaf < 0):
        raise _Refused(f"{where} has a negative num_features")
    total = int(per_leaf.sum())
    if "leaf_features" in fields:
        used = _ints(fields["leaf_features"], total, f"{where} leaf_features")
        if np.any((used < 0) | (used >= n_features)):
            raise _Refused(f"{where} has a linear leaf on a feature outside the "
                           f"{n_features} features")
    if "leaf_coeff" in fields:
        _count(fields["leaf_coeff"], total, f"{where} leaf_coeff")


def _tree_blocks(lines: list[str], start: int) -> tuple[list[tuple[int, dict[str, str]]], int]:
    """``Tree=`` blocks read the way LightGBM does without ``tree_sizes``; the index of
    the first line after them."""
    blocks: list[tuple[int, dict[str, str]]] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if not line.startswith("Tree="):
            break
        number = len(blocks)
        # A tree ends at a blank line (the last element of the split is not one: it is
        # what follows the final newline). Without one LightGBM reads past the text.
        end = next((j for j in range(i + 1, len(lines) - 1) if lines[j] == ""), None)
        if end is None:
            raise _TruncatedModel(f"the text ends inside tree {number}")
        if line != f"Tree={number}":
            raise _Refused(f"tree {number} is headed {line[:40]!r}")
        fields: dict[str, str] = {}
        i += 1
        while i < end:
            line = lines[i]
            if len(fields) == _MAX_TREE_LINES:
                raise _Refused(f"tree {number} has more than {_MAX_TREE_LINES} lines")
            key, sep, value = line.partition("=")
            if not sep:
                raise _Refused(f"tree {number} has a line without '=' ({line[:40]!r})")
            if key in fields:
                raise _Refused(f"tree {number} repeats its {key[:40]!r} line")
            fields[key] = value
            i += 1
        blocks.append((number, fields))
        i = end + 1
    return blocks, i


def check_lightgbm_text(text: str) -> str:
    """Check a LightGBM text model and return it as LightGBM should be given it.

    Parameters
    ----------
    text : str
        The model as written by ``booster.save_model`` / ``model_to_string``.

    Returns
    -------
    str
        The same model with ``\\n`` line endings and no ``tree_sizes`` line.

    Raises
    ------
    _Refused
        The model is malformed in a way LightGBM would not survive (``crafted``), is
        not a classifier, or is cut short (:class:`_TruncatedModel`).
    """
    if "\x00" in text:
        raise _Refused("it contains a NUL character, which LightGBM reads as the end of "
                       "the model")
    lines = text.replace("\r\n", "\n").split("\n")
    if any("\r" in line for line in lines):
        raise _Refused("it has a stray carriage return inside a line")
    if not lines or lines[0] != "tree":
        raise _NotAClassifierModel("it does not start with the line 'tree' of a LightGBM "
                                   "model")
    if not any(line.startswith("Tree=") for line in lines):
        raise _TruncatedModel("the text ends before its first tree")
    header, first_tree = _header(lines[1:])
    first_tree += 1
    missing = [k for k in ("num_class", "label_index", "max_feature_idx", "feature_names",
                           "feature_infos") if k not in header]
    if missing:
        raise _Refused(f"its header lacks {', '.join(missing)}")
    num_class = _int(header["num_class"], "num_class")
    per_iteration = _int(header.get("num_tree_per_iteration", header["num_class"]),
                         "num_tree_per_iteration")
    max_feature = _int(header["max_feature_idx"], "max_feature_idx")
    _int(header["label_index"], "label_index")
    if not 1 <= num_class <= _MAX_CLASSES or per_iteration != num_class:
        raise _Refused(f"it has num_class={num_class} and num_tree_per_iteration="
                       f"{per_iteration}; a classifier has as many trees per iteration as "
                       "classes")
    if max_feature < 0:
        raise _Refused(f"it has max_feature_idx={max_feature}")
    n_features = max_feature + 1
    for key in ("feature_names", "feature_infos", "monotone_constraints"):
        if key in header and len(header[key].split(" ")) != n_features:
            raise _Refused(f"its {key} does not list {n_features} features")
    if "objective" in header:
        _check_objective(header["objective"], num_class)
    blocks, after = _tree_blocks(lines, first_tree)
    if not blocks:
        raise _TruncatedModel("the text ends before its first tree")
    for number, fields in blocks:
        _check_tree(fields, n_features, f"tree {number}")
    rest = [line for line in lines[after:] if line]
    if not rest or rest[0] != "end of trees":
        cut = len(rest) == 1 and lines[-1] == rest[0] and (
            "end of trees".startswith(rest[0]) or f"Tree={len(blocks)}".startswith(rest[0])
        )
        if not rest or cut:
            raise _TruncatedModel(f"the text ends after tree {len(blocks) - 1} without the "
                                  "line 'end of trees'")
        raise _Refused(f"after its trees comes {rest[0][:40]!r} instead of 'end of trees'")
    _check_parameters(lines[after:])
    if "tree_sizes" in header:
        sizes = header["tree_sizes"].split(" ") if header["tree_sizes"] else []
        if len(sizes) != len(blocks):
            raise _TruncatedModel(f"its header lists {len(sizes)} trees but the text holds "
                                  f"{len(blocks)}")
    kept = [line for line in lines if not line.startswith("tree_sizes=")]
    return "\n".join(kept)


def _check_parameters(lines: list[str]) -> None:
    """The ``parameters:`` block LightGBM keeps and later parses line by line: each
    ``[name: value]`` (a line without ``:`` makes it index past a split), closed by
    ``end of parameters``."""
    if "parameters:" not in lines:
        return
    start = lines.index("parameters:") + 1
    for line in lines[start:]:
        if line == "end of parameters":
            return
        if line and not _PARAMETER.fullmatch(line):
            if line is lines[-1]:
                break
            raise _Refused(f"its parameters hold the malformed line {line[:60]!r}")
    raise _TruncatedModel("the text ends inside its parameters, before 'end of parameters'")


def _checked_setstate(original: Callable[..., None]) -> Callable[..., None]:
    """``Booster.__setstate__`` that checks and normalises the model string first."""

    def __setstate__(self: object, state: dict) -> None:
        _check_booster_state(state)
        original(self, state)

    __setstate__.__wrapped__ = original  # type: ignore[attr-defined]
    return __setstate__


def _check_booster_state(state: object) -> None:
    """A ``lightgbm.Booster`` state: a dict whose model string is checked (and normalised
    in place) before LightGBM parses it; a Booster without one would crash on first use."""
    if type(state) is not dict:
        raise _Refused("a LightGBM Booster has a malformed state")
    key = "_handle" if "_handle" in state else "handle"
    model = state.get(key)
    if type(model) is not str:
        raise _Refused("a LightGBM Booster has no model string (it would crash when used)")
    try:
        state[key] = check_lightgbm_text(model)
    except _TruncatedModel as exc:
        raise _Refused(f"its LightGBM model string is cut short: {exc}") from exc
    except _Refused as exc:
        raise _Refused(f"its LightGBM model string is malformed: {exc}",
                       crafted=exc.crafted) from exc
    if key == "_handle":
        state.pop("handle", None)
