"""Tests for :mod:`hpmkd.safe_load`, the restricted loader for untrusted teacher files.

Three groups: genuine models must round-trip exactly; crafted payloads must be refused
with ``UnsafeModelError`` without running anything (a marker file must never appear);
broken files must give a ``ModelFileError`` that names the file.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.ensemble import (
    AdaBoostClassifier,
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree._tree import Tree

from hpmkd.safe_load import (
    ALLOWED_GLOBALS,
    SUPPORTED_EXTENSIONS,
    ModelFileError,
    UnsafeModelError,
    load_model_bytes,
    load_model_file,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------
# Genuine teachers
# ---------------------------------------------------------------------------

N_FEATURES = 6
NUMERIC = [f"f{i}" for i in range(N_FEATURES)]


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    X, y = make_classification(
        n_samples=200, n_features=N_FEATURES, n_informative=4, random_state=0
    )
    y3 = np.digitize(X[:, 0], [-0.5, 0.5])  # a three-class target
    frame = pd.DataFrame(X, columns=NUMERIC)
    frame["colour"] = np.array(["red", "green", "blue", "grey"])[np.arange(200) % 4]
    return {"X": X, "y": y, "y3": y3, "frame": frame}


def _teachers() -> dict[str, tuple[Any, str]]:
    """Name -> (unfitted estimator, which data to fit on)."""
    small_lgbm = {"n_estimators": 5, "num_leaves": 7, "verbose": -1, "random_state": 0}
    column_lgbm = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), NUMERIC),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
                    ]
                ),
            ),
            ("model", lgb.LGBMClassifier(**small_lgbm)),
        ]
    )
    column_forest = make_pipeline(
        ColumnTransformer(
            [("num", SimpleImputer(), NUMERIC), ("cat", OrdinalEncoder(), ["colour"])]
        ),
        RandomForestClassifier(n_estimators=3, random_state=0),
    )
    return {
        "logistic": (LogisticRegression(max_iter=500), "binary"),
        "tree": (DecisionTreeClassifier(max_depth=4, random_state=0), "binary"),
        "forest": (RandomForestClassifier(n_estimators=4, random_state=0), "binary"),
        "extra_trees": (ExtraTreesClassifier(n_estimators=4, random_state=0), "binary"),
        "gradient_boosting": (
            GradientBoostingClassifier(n_estimators=4, random_state=0),
            "multiclass",
        ),
        "hist_gradient_boosting": (
            HistGradientBoostingClassifier(max_iter=4, random_state=0),
            "binary",
        ),
        "hist_gradient_boosting_3": (
            HistGradientBoostingClassifier(max_iter=4, random_state=0),
            "multiclass",
        ),
        "adaboost": (AdaBoostClassifier(n_estimators=4, random_state=0), "binary"),
        "knn_kd_tree": (KNeighborsClassifier(algorithm="kd_tree"), "binary"),
        "knn_ball_tree": (KNeighborsClassifier(algorithm="ball_tree"), "binary"),
        "mlp": (
            MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=0),
            "binary",
        ),
        "svc": (SVC(probability=True, random_state=0), "binary"),
        "gaussian_nb": (GaussianNB(), "binary"),
        "calibrated": (CalibratedClassifierCV(LogisticRegression(), cv=3), "binary"),
        "voting": (
            VotingClassifier(
                [("lr", LogisticRegression()), ("dt", DecisionTreeClassifier(max_depth=3))],
                voting="soft",
            ),
            "binary",
        ),
        "stacking": (
            StackingClassifier(
                [("lr", LogisticRegression()), ("dt", DecisionTreeClassifier(max_depth=3))],
                cv=3,
            ),
            "binary",
        ),
        "scaled_pipeline": (
            make_pipeline(SimpleImputer(), StandardScaler(), MinMaxScaler(), LogisticRegression()),
            "binary",
        ),
        "lightgbm": (lgb.LGBMClassifier(**small_lgbm), "binary"),
        "column_lightgbm": (column_lgbm, "frame"),
        "column_forest": (column_forest, "frame"),
    }


def _inputs(data: dict[str, Any], kind: str) -> tuple[Any, np.ndarray]:
    if kind == "frame":
        return data["frame"], data["y"]
    return data["X"], data["y3" if kind == "multiclass" else "y"]


@pytest.fixture(scope="module")
def fitted(data: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Name -> (fitted teacher, the X to predict on)."""
    out = {}
    with _quiet():
        for name, (model, kind) in _teachers().items():
            X, y = _inputs(data, kind)
            out[name] = (model.fit(X, y), X)
    return out


def _quiet() -> warnings.catch_warnings:
    """Silence convergence warnings from the deliberately tiny fits."""
    return warnings.catch_warnings(action="ignore")


def _dump(model: object, path: Path, fmt: str) -> None:
    if fmt.startswith("joblib"):
        joblib.dump(model, path, compress=int(fmt[-1]))
    else:
        with open(path, "wb") as handle:
            pickle.dump(model, handle, protocol=int(fmt[-1]))


FORMATS = ["joblib0", "joblib3", "pickle2", "pickle5"]


@pytest.mark.parametrize("name", sorted(_teachers()))
def test_round_trip_matches_original(
    name: str, fitted: dict[str, tuple[Any, Any]], tmp_path: Path
) -> None:
    model, X = fitted[name]
    expected = model.predict_proba(X)
    for fmt in FORMATS:
        path = tmp_path / f"{name}_{fmt}.joblib"
        _dump(model, path, fmt)
        loaded = load_model_file(path)
        assert type(loaded) is type(model), fmt
        np.testing.assert_array_equal(loaded.predict_proba(X), expected, err_msg=fmt)


@pytest.mark.parametrize("compress", [("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)])
def test_other_joblib_compressors(
    compress: tuple[str, int], fitted: dict[str, tuple[Any, Any]], tmp_path: Path
) -> None:
    model, X = fitted["column_lightgbm"]
    path = tmp_path / "model.pkl"
    joblib.dump(model, path, compress=compress)
    np.testing.assert_array_equal(load_model_file(path).predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib", ".JOBLIB"])
def test_pickle_extensions_and_plain_containers(suffix: str, tmp_path: Path) -> None:
    # Plain data is harmless; the caller decides whether it is a usable model.
    value = {"a": [1, 2.5, "x", None, (True, b"raw")], "b": {1, 2}, "c": frozenset({3})}
    path = tmp_path / f"data{suffix}"
    path.write_bytes(pickle.dumps(value, protocol=2))
    assert load_model_file(path) == value


def test_lightgbm_text_model(
    fitted: dict[str, tuple[Any, Any]], data: dict[str, Any], tmp_path: Path
) -> None:
    model, X = fitted["lightgbm"]
    for suffix in (".txt", ".lgb"):
        path = tmp_path / f"model{suffix}"
        model.booster_.save_model(str(path))
        booster = load_model_file(path)
        assert isinstance(booster, lgb.Booster)
        np.testing.assert_allclose(booster.predict(X), model.predict_proba(X)[:, 1])


@pytest.mark.parametrize("name", ["scaled_pipeline", "column_lightgbm", "hist_gradient_boosting"])
def test_skops_round_trip(name: str, fitted: dict[str, tuple[Any, Any]], tmp_path: Path) -> None:
    skops_io = pytest.importorskip("skops.io")
    model, X = fitted[name]
    path = tmp_path / "model.skops"
    skops_io.dump(model, path)
    np.testing.assert_array_equal(load_model_file(path).predict_proba(X), model.predict_proba(X))


class NotAllowedInSkops:
    """A user-defined class: skops itself does not trust it and neither do we."""

    def __init__(self) -> None:
        self.weights = [1, 2, 3]


def test_skops_untrusted_type_is_refused(tmp_path: Path) -> None:
    skops_io = pytest.importorskip("skops.io")
    path = tmp_path / "model.skops"
    skops_io.dump(NotAllowedInSkops(), path)
    with pytest.raises(UnsafeModelError, match="NotAllowedInSkops"):
        load_model_file(path)


def test_load_model_bytes_leaves_no_temp_file(
    fitted: dict[str, tuple[Any, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    model, X = fitted["forest"]
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    loaded = load_model_bytes(buffer.getvalue(), "../../teacher.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert list(private_tmp.iterdir()) == []
    # ... also when loading fails.
    with pytest.raises(UnsafeModelError, match=r"evil\.pkl"):
        load_model_bytes(pickle.dumps(_Payload(os.system, ("true",))), "evil.pkl")
    with pytest.raises(ModelFileError, match=r"broken\.joblib"):
        load_model_bytes(b"", "broken.joblib")
    assert list(private_tmp.iterdir()) == []


def test_load_model_bytes_unknown_extension_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(ModelFileError, match=r"model\.exe.*\.joblib"):
        load_model_bytes(b"MZ", "model.exe")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# The allow list itself
# ---------------------------------------------------------------------------


def test_allow_list_is_exact_and_has_no_dangerous_names() -> None:
    assert (LogisticRegression.__module__, LogisticRegression.__qualname__) in ALLOWED_GLOBALS
    assert ("sklearn.tree._tree", "Tree") in ALLOWED_GLOBALS
    assert all("." not in name for _, name in ALLOWED_GLOBALS)
    modules = {module for module, _ in ALLOWED_GLOBALS}
    assert not modules & {"os", "posix", "nt", "subprocess", "sys", "importlib", "io", "shutil"}
    builtin_names = {name for module, name in ALLOWED_GLOBALS if module == "builtins"}
    dangerous = {"getattr", "setattr", "eval", "exec", "compile", "open", "__import__", "input"}
    assert not builtin_names & dangerous
    assert not any(module.startswith("numpy.testing") for module in modules)
    # FunctionTransformer is admitted (every fitted "passthrough" is one), but the
    # only functions it may hold are numpy's, by exact name; nothing from functools
    # but the guarded partial, nothing from operator, pickle or the array-API shims.
    assert ("sklearn.preprocessing._function_transformer", "FunctionTransformer") in (
        ALLOWED_GLOBALS
    )
    numpy_functions = {name for module, name in ALLOWED_GLOBALS if module == "numpy"}
    assert {"log1p", "sqrt", "clip"} <= numpy_functions
    assert not numpy_functions & {"load", "fromfile", "frombuffer", "memmap", "vectorize"}
    assert {name for module, name in ALLOWED_GLOBALS if module == "functools"} == {"partial"}
    assert not modules & {"operator", "pickle", "types", "marshal", "ctypes", "runpy"}


def test_hist_gradient_boosting_with_categories_loads(
    data: dict[str, Any], tmp_path: Path
) -> None:
    # HistGradientBoosting with categorical columns stores
    # FunctionTransformer(functools.partial(check_array, ...)): the user never wrote it.
    frame = data["frame"].assign(colour=lambda f: f["colour"].astype("category"))
    with _quiet():
        model = HistGradientBoostingClassifier(max_iter=2).fit(frame, data["y"])
    path = tmp_path / "hgb_categorical.joblib"
    joblib.dump(model, path)
    loaded = load_model_file(path)
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


# ---------------------------------------------------------------------------
# Crafted payloads
# ---------------------------------------------------------------------------


class _Payload:
    """Pickles as ``func(*args)``: the classic pickle code-execution payload."""

    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


class _Reduced:
    """Pickles as ``func(*args)`` followed by ``BUILD state``."""

    def __init__(self, func: Any, args: tuple[Any, ...], state: Any) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args, self.state)


# A tiny assembler for hand-made protocol-4 pickles (readable with pickletools.dis).


def _s(text: str) -> bytes:
    raw = text.encode()
    if len(raw) < 256:
        return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw
    return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw


def _b(raw: bytes) -> bytes:
    return pickle.BINBYTES + struct.pack("<I", len(raw)) + raw


def _i(number: int) -> bytes:
    return pickle.BININT + struct.pack("<i", number)


def _global(module: str, name: str) -> bytes:
    return _s(module) + _s(name) + pickle.STACK_GLOBAL


def _tuple(*items: bytes) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def _dict(*pairs: tuple[bytes, bytes]) -> bytes:
    return pickle.EMPTY_DICT + pickle.MARK + b"".join(k + v for k, v in pairs) + pickle.SETITEMS


def _call(func: bytes, *args: bytes) -> bytes:
    return func + _tuple(*args) + pickle.REDUCE


def _program(*body: bytes) -> bytes:
    data = pickle.PROTO + b"\x04" + b"".join(body) + pickle.STOP
    pickletools.dis(data, out=io.StringIO())  # must be a well-formed pickle
    return data


def _dtype(spec: str, state: bytes) -> bytes:
    """``numpy.dtype(spec, False, True)`` followed by ``BUILD state``, as numpy pickles it."""
    return _call(_global("numpy", "dtype"), _s(spec), pickle.NEWFALSE, pickle.NEWTRUE) + (
        state + pickle.BUILD
    )


def _simple_state(endian: str, flags: int) -> bytes:
    none = pickle.NONE
    return _tuple(_i(3), _s(endian), none, none, none, _i(-1), _i(-1), _i(flags))


OBJECT_DTYPE = _dtype("O8", _simple_state("|", 63))
FLOAT_DTYPE = _dtype("f8", _simple_state("<", 0))
EMPTY_ARRAY = _call(
    _global("numpy._core.multiarray", "_reconstruct"),
    _global("numpy", "ndarray"),
    _tuple(_i(0)),
    pickle.SHORT_BINBYTES + b"\x01b",
)


def _forged_dtype_program() -> bytes:
    """A 16-byte record whose field 'a' is an object pointer, with the has-object flag cleared.

    Raw bytes viewed through it become arbitrary PyObject pointers.
    """
    fields = _dict(
        (_s("a"), _tuple(OBJECT_DTYPE, _i(0))),
        (_s("b"), _tuple(FLOAT_DTYPE, _i(8))),
    )
    state = _tuple(
        _i(3), _s("|"), pickle.NONE, _tuple(_s("a"), _s("b")), fields, _i(16), _i(1), _i(0)
    )
    return _program(
        _call(
            _global("numpy._core.numeric", "_frombuffer"),
            _b(bytes(16)),
            _dtype("V16", state),
            _tuple(_i(1)),
            _s("C"),
        )
    )


def _marker_payloads(marker: Path) -> dict[str, bytes]:
    """Payloads that would create ``marker`` if they ever ran."""
    command = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').close()"
    fitted = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    fitted.evil = _Payload(os.system, (command,))  # hidden inside a genuine estimator
    hidden = io.BytesIO()
    joblib.dump(fitted, hidden)
    return {
        "os.system": pickle.dumps(_Payload(os.system, (command,)), protocol=2),
        "builtins.exec": pickle.dumps(_Payload(builtins.exec, (code,)), protocol=4),
        "subprocess.Popen": pickle.dumps(
            _Payload(subprocess.Popen, (["touch", str(marker)],)), protocol=5
        ),
        "dotted name under sklearn": _program(_call(_global("sklearn", "os.system"), _s(command))),
        "dotted name under allowed module": _program(
            _call(_global("sklearn.pipeline", "os.system"), _s(command))
        ),
        "numpy runstring": _program(
            _call(_global("numpy.testing._private.utils", "runstring"), _s(code), _dict())
        ),
        "builtins.getattr": _program(
            _call(
                _call(_global("builtins", "getattr"), _global("builtins", "__import__"), _s("x")),
                _s("os"),
            )
        ),
        "protocol-2 GLOBAL opcode": b"\x80\x02cposix\nsystem\n"
        + pickle.BINUNICODE
        + struct.pack("<I", len(command))
        + command.encode()
        + pickle.TUPLE1
        + pickle.REDUCE
        + pickle.STOP,
        "INST opcode": b"\x80\x02(V" + command.encode() + b"\nios\nsystem\n.",
        "payload inside an estimator": hidden.getvalue(),
        "lightgbm Booster called with a path": _program(
            _call(_global("lightgbm.basic", "Booster"), pickle.NONE, pickle.NONE, _s(str(marker)))
        ),
    }


@pytest.mark.parametrize("suffix", [".joblib", ".pkl"])
def test_code_execution_payloads_are_refused(suffix: str, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    for label, payload in _marker_payloads(marker).items():
        path = tmp_path / f"evil{suffix}"
        path.write_bytes(payload)
        with pytest.raises(UnsafeModelError) as info:
            load_model_file(path)
        message = str(info.value)
        assert str(path) in message and "NOT loaded" in message, label
        assert not marker.exists(), label


def test_refusal_names_the_global(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(_program(_call(_global("sklearn", "os.system"), _s("true"))))
    with pytest.raises(UnsafeModelError, match=r"'sklearn\.os\.system'.*scikit-learn"):
        load_model_file(path)


def test_forged_numpy_dtype_is_refused(tmp_path: Path) -> None:
    program = _forged_dtype_program()
    # Sanity check that the payload is real: the standard unpickler builds an array
    # with a hidden object field (harmless here only because the pointers are NULL).
    forged = pickle.loads(program)
    assert forged.dtype.fields["a"][0] == np.dtype(object) and not forged.dtype.hasobject
    path = tmp_path / "forged.pkl"
    path.write_bytes(program)
    with pytest.raises(UnsafeModelError, match="dtype"):
        load_model_file(path)


def _misuse_payloads() -> dict[str, bytes]:
    """Allowed names used the way only exploits use them."""
    filled = (
        EMPTY_ARRAY
        + _tuple(_i(1), _tuple(_i(2)), FLOAT_DTYPE, pickle.NEWFALSE, _b(bytes(16)))
        + pickle.BUILD
    )
    return {
        # ndarray(shape, object dtype, raw bytes) turns bytes into object pointers.
        "ndarray called directly": _program(
            _call(_global("numpy", "ndarray"), _tuple(_i(2)), OBJECT_DTYPE, _b(bytes(16)))
        ),
        "ndarray via NEWOBJ": _program(
            _global("numpy", "ndarray")
            + _tuple(_tuple(_i(2)), OBJECT_DTYPE, _b(bytes(16)))
            + pickle.NEWOBJ
        ),
        # A view on an array, then re-setting the array frees memory the view uses.
        "frombuffer over an array": _program(
            filled
            + pickle.MEMOIZE
            + pickle.POP
            + _call(
                _global("numpy._core.numeric", "_frombuffer"),
                pickle.BINGET + b"\x00",
                FLOAT_DTYPE,
                _tuple(_i(2)),
                _s("C"),
            )
        ),
        "array state set twice": _program(
            filled
            + _tuple(_i(1), _tuple(_i(1)), FLOAT_DTYPE, pickle.NEWFALSE, _b(bytes(8)))
            + pickle.BUILD
        ),
        "uninitialised array": _program(
            _call(
                _global("numpy._core.multiarray", "_reconstruct"),
                _global("numpy", "ndarray"),
                _tuple(_i(1000)),
                pickle.SHORT_BINBYTES + b"\x01b",
            )
        ),
        "item assignment into an array": _program(
            filled + _i(0) + pickle.BINFLOAT + struct.pack(">d", 1.0) + pickle.SETITEM
        ),
        # BUILD on a class or function would patch it for the whole process.
        "BUILD on a class": _program(
            _global("sklearn.linear_model._logistic", "LogisticRegression")
            + _tuple(pickle.NONE, _dict((_s("predict_proba"), pickle.NONE)))
            + pickle.BUILD
        ),
        "BUILD on a function": _program(
            _global("numpy.random._pickle", "__randomstate_ctor")
            + _tuple(pickle.NONE, _dict((_s("__defaults__"), _tuple(_s("PCG64")))))
            + pickle.BUILD
        ),
        "codec lookup by name": _program(_call(_global("_codecs", "encode"), _s("x"), _s("rot13"))),
        "persistent id": _program(_s("anything") + pickle.BINPERSID),
        "copyreg extension": _program(pickle.EXT1 + b"\x01"),
    }


def test_misuse_of_allowed_names_is_refused(tmp_path: Path) -> None:
    import numpy.random._pickle as numpy_random_pickle

    defaults = numpy_random_pickle.__randomstate_ctor.__defaults__
    for payload in _misuse_payloads().values():
        path = tmp_path / "evil.joblib"
        path.write_bytes(payload)
        with pytest.raises(UnsafeModelError, match=r"evil\.joblib"):
            load_model_file(path)
    assert numpy_random_pickle.__randomstate_ctor.__defaults__ == defaults


def test_short_object_list_is_refused_in_subprocess(tmp_path: Path) -> None:
    # numpy reads past the end of a too-short list when filling an object array, so
    # this payload would crash the interpreter if unchecked: run it in a child.
    path = tmp_path / "short_list.pkl"
    state = _tuple(
        _i(1),
        _tuple(_i(64)),
        OBJECT_DTYPE,
        pickle.NEWFALSE,
        pickle.EMPTY_LIST + pickle.MARK + _i(1) + pickle.APPENDS,
    )
    path.write_bytes(_program(EMPTY_ARRAY + state + pickle.BUILD))
    script = textwrap.dedent(
        f"""
        from hpmkd.safe_load import UnsafeModelError, load_model_file
        try:
            load_model_file({str(path)!r})
        except UnsafeModelError:
            print("refused")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "refused"


def test_tree_with_out_of_range_children_is_refused(
    fitted: dict[str, tuple[Any, Any]], tmp_path: Path
) -> None:
    tree = fitted["tree"][0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10**6  # prediction would read far outside the node table
    state["nodes"] = nodes
    args = (tree.n_features, np.asarray(tree.n_classes), tree.n_outputs)
    path = tmp_path / "tree.pkl"
    path.write_bytes(pickle.dumps(_Reduced(Tree, args, state), protocol=5))
    with pytest.raises(UnsafeModelError, match="tree"):
        load_model_file(path)


def test_boosting_tree_with_cycle_is_refused(
    fitted: dict[str, tuple[Any, Any]], tmp_path: Path
) -> None:
    model = fitted["hist_gradient_boosting"][0]
    path = tmp_path / "hgb.joblib"
    predictor = model._predictors[0][0]
    original = predictor.nodes
    try:
        predictor.nodes = original.copy()
        predictor.nodes["left"][0] = 0  # root points to itself: endless walk
        joblib.dump(model, path)
    finally:
        predictor.nodes = original
    with pytest.raises(UnsafeModelError, match="tree"):
        load_model_file(path)


# ---------------------------------------------------------------------------
# Broken files
# ---------------------------------------------------------------------------


def _real_dump(fitted: dict[str, tuple[Any, Any]], compress: int) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(fitted["forest"][0], buffer, compress=compress)
    return buffer.getvalue()


def test_bad_files_give_model_file_error(
    fitted: dict[str, tuple[Any, Any]], tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    plain, compressed = _real_dump(fitted, 0), _real_dump(fitted, 3)
    cases = {
        "empty.joblib": (b"", "empty"),
        "random.pkl": (rng.bytes(4096), "not a pickle"),
        "random_header.pkl": (b"\x80\x04" + rng.bytes(4096), "corrupt|truncated"),
        "truncated.joblib": (plain[: len(plain) // 2], "truncated"),
        "truncated_compressed.joblib": (compressed[: len(compressed) // 2], "truncated"),
        "table.joblib": (b"age,income,label\n31,1000,0\n45,2000,1\n", "CSV"),
        "class_table.joblib": (b"class,x\n1,2\n", "CSV"),
        "lightgbm.pkl": (b"tree\nversion=v4\n", "LightGBM text model"),
        "old_protocol.pkl": (pickle.dumps({"a": 1}, protocol=0), "protocol 0 or 1"),
        "model.txt": (b"not a lightgbm model\n", "LightGBM"),
        "model.skops": (b"PK\x03\x04 not really a zip", "corrupt"),
        "model.h5": (b"\x89HDF", r"\.joblib"),
        "model": (b"\x80\x04N.", r"\(none\)"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ModelFileError, match=expected) as info:
            load_model_file(path)
        assert str(path) in str(info.value), name
        assert "Traceback" not in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model_file(tmp_path / "nope.joblib")
    folder = tmp_path / "folder.pkl"
    folder.mkdir()
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model_file(folder)


def test_error_is_chained_to_the_low_level_cause(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pkl"
    path.write_bytes(pickle.dumps(list(range(100)), protocol=4)[:-20])
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    assert info.value.__cause__ is not None


def test_supported_extensions_are_listed() -> None:
    expected = {".joblib", ".pkl", ".pickle", ".txt", ".lgb", ".json", ".ubj", ".skops"}
    assert expected == set(SUPPORTED_EXTENSIONS)
