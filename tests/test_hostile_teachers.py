"""Untrusted teacher files cannot hurt the process that serves them.

A corpus of hostile teacher files is built here, one per gadget family of issue 9, as
pickles and as ``.skops`` files (and LightGBM text where that is the format): each uses
only allow-listed classes, yet - loaded plainly - overflows a heap buffer, reads out of
bounds, dereferences NULL, loops forever, allocates gigabytes, inflates a small file,
recurses, burns CPU, starts hundreds of threads or calls a method the file names.

Every one is refused (or, for ``n_jobs``, defused) with one clear message through the
Python API, the command line (exit code 2, one ``error:`` line) and the app's upload
check, and this process is alive afterwards and still serves genuine teachers. With the
fitted-state checks switched off inside the isolated process (a test-only switch), the
same files crash, abort or hang *that* process, and the error says so: the isolation
contains what the checks would miss. Deliberate crashes, loops, memory and thread bombs
through the trusted-file option show the limits themselves.
"""

from __future__ import annotations

import copy
import copyreg
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
import skops.io
from joblib.numpy_pickle import NumpyArrayWrapper
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    StackingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.svm import SVC

from hpmkd import DistillationDataset
from hpmkd.cli import main
from hpmkd.errors import HPMKDInputError, ServerSettingError, TeacherProcessError
from hpmkd.isolation import check_teacher_file, run_teacher_file
from hpmkd.safe_load import check_lightgbm_model, check_model
from hpmkd.safe_load.errors import ModelFileError, UnsafeModelError
from hpmkd.settings import TeacherLimits
from hpmkd_app import teachers as app_teachers

FEATURES = ["f0", "f1", "f2", "f3"]
#: Limits of every run here: a 2 MB upload limit (so a file may unpack to 8 MB).
LIMITS = TeacherLimits(upload_limit_mb=2, memory_mb=2048, cpu_seconds=10, wall_seconds=60,
                       threads=8)
LIMIT_ENV = {"HPMKD_UPLOAD_LIMIT_MB": "2", "HPMKD_TEACHER_MEMORY_MB": "2048",
             "HPMKD_TEACHER_CPU_S": "10", "HPMKD_TEACHER_WALL_S": "60",
             "HPMKD_TEACHER_THREADS": "8"}
CRAFTED = "This is how crafted"


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(240, 4)), columns=FEATURES)
    frame["c"] = rng.integers(0, 5, 240)
    frame["y"] = ((frame["f0"] + 0.5 * rng.normal(size=240)) > 0).astype(int)
    return frame


FRAME = _frame()
X, Y = FRAME[FEATURES], FRAME["y"]


# ----------------------------------------------------------------------- gadget builders
class _BoosterState:
    """Pickles as a ``lightgbm.Booster`` with any state, without ever being one here
    (a live Booster with a crafted state would crash this process)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # the pickler checks the class __newobj__ makes
        return lightgbm.Booster

    def __reduce__(self) -> Any:
        return (copyreg.__newobj__, (lightgbm.Booster,), self.state)


def _lgbm(n_jobs: int = 1) -> lightgbm.LGBMClassifier:
    return lightgbm.LGBMClassifier(n_estimators=4, num_leaves=4, n_jobs=n_jobs,
                                   verbose=-1).fit(X, Y)


def _model_text() -> str:
    return _lgbm().booster_.model_to_string()


def _edit_tree_line(text: str, key: str, edit: Callable[[list[str]], list[str]]) -> str:
    """``text`` with the first tree's ``key=`` values changed by ``edit``."""
    lines = text.split("\n")
    start = lines.index("Tree=0")
    for i in range(start, len(lines)):
        if lines[i].startswith(key + "="):
            lines[i] = key + "=" + " ".join(edit(lines[i].split("=", 1)[1].split(" ")))
            return "\n".join(lines)
    raise AssertionError(key)


def _split_feature_text() -> str:
    return _edit_tree_line(_model_text(), "split_feature", lambda v: ["1000000", *v[1:]])


def _self_loop_text() -> str:  # the root's left child is the root
    return _edit_tree_line(_model_text(), "left_child", lambda v: ["0", *v[1:]])


def _lgbm_with_text(text: str | None) -> lightgbm.LGBMClassifier:
    model = _lgbm()
    state = model.booster_.__getstate__()
    state["_handle"] = text
    model._Booster = _BoosterState(state)  # type: ignore[assignment]
    return model


def _gbm_stage_shape() -> GradientBoostingClassifier:
    model = GradientBoostingClassifier(n_estimators=2, max_depth=1, random_state=0).fit(X, Y)
    wide = np.empty((2, 20), dtype=object)
    for i in range(2):
        for k in range(20):
            wide[i, k] = copy.deepcopy(model.estimators_[i, 0])
    model.estimators_ = wide  # 20 trees per stage write 20 columns into a 1-column buffer
    return model


def _forest_feature_index() -> RandomForestClassifier:
    model = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, Y)
    tree = model.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes["feature"][0] = 10**6
    tree.__setstate__({**state, "nodes": nodes})
    return model


def _hgb_feature_index() -> HistGradientBoostingClassifier:
    model = HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(X, Y)
    model._predictors[0][0].nodes["feature_idx"][0] = 10**6
    return model


def _kd_tree_index() -> KNeighborsClassifier:
    model = KNeighborsClassifier(algorithm="kd_tree").fit(X, Y)
    state = list(model._tree.__getstate__())
    state[1] = state[1] + 10**9
    model._tree.__setstate__(tuple(state))
    return model


def _svc_support() -> SVC:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = SVC(probability=True, random_state=0).fit(X, Y)
    model.support_ = np.concatenate([model.support_] * 50)  # libsvm reads 50x the vectors
    return model


def _one_hot_offsets() -> Pipeline:
    model = Pipeline([("enc", OneHotEncoder(sparse_output=False)),
                      ("lr", LogisticRegression())]).fit(FRAME[["c"]], Y)
    model.named_steps["enc"]._n_features_outs = [1]  # five categories into one column
    return model


def _shared_tree(copies: int) -> RandomForestClassifier:
    model = RandomForestClassifier(n_estimators=1, max_depth=8, random_state=0).fit(X, Y)
    model.estimators_ = model.estimators_ * copies  # one tree, predicted `copies` times
    return model


def _n_jobs_400() -> RandomForestClassifier:
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, Y)
    model.n_jobs = 400
    return model


def _stacking(method: str, booster: bool) -> StackingClassifier:
    model = StackingClassifier(
        [("lgbm", lightgbm.LGBMClassifier(n_estimators=4, verbose=-1)),
         ("lr", LogisticRegression())], final_estimator=LogisticRegression(), cv=2,
    ).fit(X, Y)
    if booster:
        model.estimators_[0] = _BoosterState(model.estimators_[0].booster_.__getstate__())
    model.stack_method_ = [method, *model.stack_method_[1:]]
    return model


def _joblib(model: Any, compress: int = 0) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=compress)
    return buffer.getvalue()


def _allocation_bomb(compress: bool) -> bytes:
    """A few hundred bytes announcing a 1.6 GB array (joblib allocates before reading)."""
    wrapper = NumpyArrayWrapper(np.ndarray, (200_000_000,), "C", np.dtype("float64"))
    data = pickle.dumps({"coef_": wrapper}, protocol=4)
    return zlib.compress(data, 9) if compress else data


def _decompression_bomb() -> bytes:
    """64 KB of zlib that inflates to 64 MB of pickled zeros."""
    chunk = b"\x8e" + (1 << 20).to_bytes(8, "little") + bytes(1 << 20)  # BINBYTES8 1 MB
    packer = zlib.compressobj(9)
    parts = [packer.compress(b"\x80\x04](")]
    for _ in range(64):
        parts.append(packer.compress(chunk))
    parts.append(packer.compress(b"e."))
    parts.append(packer.flush())
    return b"".join(parts)


def _deep_pickle(depth: int = 200_000) -> bytes:
    return b"\x80\x04" + b"]" * depth + b"a" * (depth - 1) + b"."


def _skops(model: Any) -> bytes:
    return skops.io.dumps(model)


def _skops_schema(data: bytes, edit: Callable[[dict[str, Any]], Any],
                  extra: dict[str, bytes] | None = None) -> bytes:
    """A .skops file whose schema is changed by ``edit`` (and extra entries added)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(source.read("schema.json"))
    edit(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = (json.dumps(schema).encode() if item.filename == "schema.json"
                       else source.read(item.filename))
            target.writestr(item.filename, content)
        for name, content in (extra or {}).items():
            target.writestr(name, content)
    return out.getvalue()


def _nodes(tree: Any) -> list[dict[str, Any]]:
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _set_handle(text: str | None) -> Callable[[dict[str, Any]], None]:
    def edit(schema: dict[str, Any]) -> None:
        for node in _nodes(schema):
            content = node.get("content")
            if node.get("__loader__") == "DictNode" and isinstance(content, dict) \
                    and "_handle" in content:
                handle = content["_handle"]
                if text is None:
                    handle.update({"__class__": "NoneType", "content": "null"})
                else:
                    handle["content"] = json.dumps(text)
                return
        raise AssertionError("no booster in the schema")

    return edit


def _set_stack_method(schema: dict[str, Any]) -> None:
    for node in _nodes(schema):
        content = node.get("content")
        if isinstance(content, dict) and "stack_method_" in content:
            content["stack_method_"]["content"][0]["content"] = json.dumps("save_model")
            return
    raise AssertionError("no stack_method_")


def _repeat_tree(copies: int) -> Callable[[dict[str, Any]], None]:
    """``estimators_`` lists its one tree ``copies`` times, by skops reference (``__id__``)."""
    def edit(schema: dict[str, Any]) -> None:
        for node in _nodes(schema):
            content = node.get("content")
            if isinstance(content, dict) and "estimators_" in content:
                trees = content["estimators_"]["content"]
                trees.extend([{"__id__": trees[0]["__id__"]}] * (copies - 1))
                return
        raise AssertionError("no estimators_")

    return edit


def _constructor_booster(schema: dict[str, Any]) -> None:
    """The top object becomes ``lightgbm.Booster(None, None, '/etc/hostname')``."""
    def json_node(value: Any, ident: int) -> dict[str, Any]:
        return {"__class__": type(value).__name__, "__module__": "builtins",
                "__loader__": "JsonNode", "content": json.dumps(value), "is_json": True,
                "__id__": ident}

    schema.update({
        "__class__": "Booster", "__module__": "lightgbm.basic",
        "__loader__": "ConstructorFromReduceNode",
        "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                    "__id__": 2, "content": [json_node(None, 3), json_node(None, 4),
                                             json_node("/etc/hostname", 5)]},
    })


def _deep_skops(depth: int = 40_000) -> bytes:
    head = '{"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": ['
    schema = (head * depth + "]}" * depth)[:-1] + ', "protocol": 2, "_skops_version": "0"}'
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        target.writestr("schema.json", schema)
    return out.getvalue()


@dataclass(frozen=True)
class Gadget:
    """One hostile file and the words its refusal must contain."""

    filename: str
    build: Callable[[], bytes]
    words: str
    #: What the file does when the fitted-state checks are off inside the isolated
    #: process ("crash": a crash, abort or hang, contained; "error": fails in Python there;
    #: "any": memory corruption that may or may not bring it down).
    unchecked: str | None = None


def _text(build: Callable[[], str]) -> Callable[[], bytes]:
    return lambda: build().encode()


GADGETS: dict[str, Gadget] = {
    "gbm_stage_shape.joblib": Gadget(
        "gbm.joblib", lambda: _joblib(_gbm_stage_shape()), "20 trees per stage", "crash"),
    "gbm_stage_shape.skops": Gadget(
        "gbm.skops", lambda: _skops(_gbm_stage_shape()), "20 trees per stage", "crash"),
    "tree_feature_index.joblib": Gadget(
        "forest.joblib", lambda: _joblib(_forest_feature_index()), "out-of-range node indices"),
    "tree_feature_index.skops": Gadget(
        "forest.skops", lambda: _skops(_forest_feature_index()), "out-of-range node indices"),
    "hgb_feature_index.joblib": Gadget(
        "hgb.joblib", lambda: _joblib(_hgb_feature_index()), "splitting on a column beyond",
        "crash"),
    "hgb_feature_index.skops": Gadget(
        "hgb.skops", lambda: _skops(_hgb_feature_index()), "splitting on a column beyond",
        "crash"),
    "kd_tree_index.joblib": Gadget(
        "knn.joblib", lambda: _joblib(_kd_tree_index()), "index points outside", "crash"),
    "kd_tree_index.skops": Gadget(
        "knn.skops", lambda: _skops(_kd_tree_index()), "index points outside", "crash"),
    "svc_support.joblib": Gadget(
        "svc.joblib", lambda: _joblib(_svc_support()), "support-vector arrays whose sizes",
        "crash"),
    "svc_support.skops": Gadget(
        "svc.skops", lambda: _skops(_svc_support()), "support-vector arrays whose sizes",
        "crash"),
    "lgbm_split_feature.txt": Gadget(
        "model.txt", _text(_split_feature_text), "splits on feature 1000000", "crash"),
    "lgbm_split_feature.joblib": Gadget(
        "lgbm.joblib", lambda: _joblib(_lgbm_with_text(_split_feature_text())),
        "splits on feature 1000000", "crash"),
    "lgbm_split_feature.skops": Gadget(
        "lgbm.skops", lambda: _skops_schema(_skops(_lgbm()), _set_handle(_split_feature_text())),
        "splits on feature 1000000", "crash"),
    "booster_without_handle.joblib": Gadget(
        "nohandle.joblib", lambda: _joblib(_lgbm_with_text(None)), "no model string", "crash"),
    "booster_without_handle.skops": Gadget(
        "nohandle.skops", lambda: _skops_schema(_skops(_lgbm()), _set_handle(None)),
        "no model string", "crash"),
    "lgbm_self_loop.txt": Gadget(
        "loop.txt", _text(_self_loop_text), "points back up the tree", "crash"),
    "lgbm_self_loop.joblib": Gadget(
        "loop.joblib", lambda: _joblib(_lgbm_with_text(_self_loop_text())),
        "points back up the tree", "crash"),
    "lgbm_truncated.txt": Gadget(
        "cut.txt", lambda: _model_text().encode()[: len(_model_text()) * 3 // 5],
        "looks truncated", "any"),
    "one_hot_offsets.joblib": Gadget(
        "onehot.joblib", lambda: _joblib(_one_hot_offsets()), "output widths that do not match",
        "any"),
    "allocation_bomb.joblib": Gadget(
        "alloc.joblib", lambda: _allocation_bomb(compress=False), "ends too early"),
    "allocation_bomb_zlib.joblib": Gadget(
        "alloc_z.joblib", lambda: _allocation_bomb(compress=True), "unpacks to more than 8 MB"),
    "decompression_bomb.joblib": Gadget(
        "bomb.joblib", _decompression_bomb, "unpacks to more than 8 MB"),
    "decompression_bomb.skops": Gadget(
        "bomb.skops", lambda: _skops_schema(_skops(LogisticRegression().fit(X, Y)), lambda s: s,
                                            {"bomb.npy": bytes(64 << 20)}),
        "unpacks to 64 MB, more than the 8 MB allowed"),
    "deep_recursion.pickle": Gadget(
        "deep.pkl", _deep_pickle, "nested more than 200 levels deep"),
    "deep_recursion.skops": Gadget("deep.skops", _deep_skops, "nested too deeply"),
    "shared_tree_cpu.joblib": Gadget(
        "cpu.joblib", lambda: _joblib(_shared_tree(100_000)),
        "lists the same DecisionTreeClassifier several times"),
    "shared_tree_cpu.skops": Gadget(
        "cpu.skops", lambda: _skops_schema(_skops(_shared_tree(1)), _repeat_tree(100_000)),
        "uses one object more than 64 times"),
    "stack_save_model.joblib": Gadget(
        "stack.joblib", lambda: _joblib(_stacking("save_model", booster=True)),
        "would call the method 'save_model'", "error"),
    "stack_save_model.skops": Gadget(
        "stack.skops", lambda: _skops_schema(_skops(_stacking("predict_proba", booster=False)),
                                             _set_stack_method),
        "would call the method 'save_model'", "error"),
    "skops_constructor_call.skops": Gadget(
        "ctor.skops", lambda: _skops_schema(_skops(LogisticRegression().fit(X, Y)),
                                            _constructor_booster),
        "ConstructorFromReduceNode"),
}
UNCHECKED = sorted(name for name, g in GADGETS.items() if g.unchecked)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every gadget written to a file, built once."""
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for name, gadget in GADGETS.items():
        path = folder / f"{name.replace('.', '_')}{Path(gadget.filename).suffix}"
        path.write_bytes(gadget.build())
        assert path.stat().st_size < LIMITS.max_file_bytes, name
        paths[name] = path
    return paths


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "data.csv"
    FRAME.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A genuine teacher file and its probabilities: the server still serves it."""
    model = _lgbm()
    path = tmp_path_factory.mktemp("genuine") / "genuine.joblib"
    joblib.dump(model, path)
    return path, model.predict_proba(X)


def _still_serving(genuine: tuple[Path, np.ndarray], pid: int) -> None:
    assert os.getpid() == pid
    path, expected = genuine
    proba = run_teacher_file(path, FRAME, FEATURES, [0, 1], LIMITS).proba
    assert np.allclose(proba, expected)


# ----------------------------------------------------------------------- the three faces
@pytest.mark.parametrize("name", sorted(GADGETS))
def test_api_refuses_the_gadget(name: str, corpus: dict[str, Path],
                                genuine: tuple[Path, np.ndarray]) -> None:
    pid = os.getpid()
    with pytest.raises(HPMKDInputError) as info:
        DistillationDataset(FRAME, target="y", teacher=str(corpus[name]), teacher_limits=LIMITS)
    message = str(info.value)
    assert GADGETS[name].words in message, message
    # Refused by the checks, before any native code ran on it: nothing crashed.
    assert not isinstance(info.value, TeacherProcessError), message
    assert corpus[name].name in message and "Traceback" not in message
    _still_serving(genuine, pid)


@pytest.mark.parametrize("name", sorted(GADGETS))
def test_app_upload_check_refuses_the_gadget(
    name: str, corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
    genuine: tuple[Path, np.ndarray],
) -> None:
    for variable, value in LIMIT_ENV.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv(app_teachers.TRUST_ENV, raising=False)
    pid = os.getpid()
    filename = GADGETS[name].filename
    with pytest.raises(HPMKDInputError) as info:
        app_teachers.check_model_bytes(corpus[name].read_bytes(), filename)
    assert GADGETS[name].words in str(info.value) and filename in str(info.value)
    _still_serving(genuine, pid)


@pytest.mark.parametrize("name", sorted(GADGETS))
def test_cli_refuses_the_gadget(name: str, corpus: dict[str, Path], data_csv: Path,
                                tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in LIMIT_ENV.items():
        monkeypatch.setenv(variable, value)
    out = tmp_path / "out"
    code = main(["distill", str(data_csv), "--target", "y", "--teacher", str(corpus[name]),
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert GADGETS[name].words in lines[0]
    assert not out.exists()


def _cli_process(args: list[str], cwd: Path, extra_env: dict[str, str] | None = None,
                 ) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, **LIMIT_ENV, **(extra_env or {}),
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "hpmkd", "distill", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


def _check_cli_process(name: str, path: Path, data_csv: Path, folder: Path) -> str:
    folder.mkdir()
    out = folder / "out"
    done = _cli_process([str(data_csv), "--target", "y", "--teacher", str(path),
                         "--out", str(out), "--quiet"], folder)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (name, done.returncode, done.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), (name, done.stderr[-2000:])
    assert not out.exists()
    return lines[0]


REPRESENTATIVE = ["svc_support.joblib", "lgbm_split_feature.skops", "lgbm_truncated.txt"]


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_cli_process_refuses_with_one_error_line(name: str, corpus: dict[str, Path],
                                                 data_csv: Path, tmp_path: Path) -> None:
    line = _check_cli_process(name, corpus[name], data_csv, tmp_path / "run")
    assert GADGETS[name].words in line


@pytest.mark.slow
def test_cli_process_refuses_every_gadget(corpus: dict[str, Path], data_csv: Path,
                                          tmp_path: Path) -> None:
    names = [n for n in sorted(GADGETS) if n not in REPRESENTATIVE]
    with ThreadPoolExecutor(max_workers=2) as pool:
        lines = list(pool.map(
            lambda n: _check_cli_process(n, corpus[n], data_csv, tmp_path / n), names))
    for name, line in zip(names, lines, strict=True):
        assert GADGETS[name].words in line, (name, line)


# ----------------------------------------------------------------------- containment
@pytest.mark.parametrize("name", UNCHECKED)
def test_the_isolated_process_contains_what_the_checks_refuse(
    name: str, corpus: dict[str, Path], genuine: tuple[Path, np.ndarray], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checks off (inside the child only): the gadget does its damage there, and here it
    is one error. Loops are stopped by the CPU limit."""
    monkeypatch.chdir(tmp_path)  # a file the gadget writes would land... not here
    pid = os.getpid()
    limits = TeacherLimits(upload_limit_mb=2, memory_mb=2048, cpu_seconds=3, wall_seconds=30,
                           threads=8)
    with pytest.raises(HPMKDInputError) as info:
        run_teacher_file(corpus[name], FRAME, FEATURES, [0, 1], limits, _checks=False)
    message = str(info.value)
    expected = GADGETS[name].unchecked
    if expected == "crash":
        assert isinstance(info.value, TeacherProcessError), message
        assert info.value.reason in {"crash", "cpu", "time", "memory"}, message
        assert "nothing else was affected" in message
    elif expected == "error":  # stack_method_ = save_model: save_model ran there, then failed
        assert "failed to predict" in message, message
    # "any": the corruption may or may not crash the child; either way it is one error.
    assert list(tmp_path.iterdir()) == []
    _still_serving(genuine, pid)


def test_checks_on_refuse_before_the_child_runs_native_code(corpus: dict[str, Path]) -> None:
    # The same crash gadget, checks on: a plain refusal, not a contained crash.
    with pytest.raises(UnsafeModelError, match="index points outside"):
        from hpmkd.safe_load import load_model_file

        load_model_file(corpus["kd_tree_index.joblib"])


class _Crash:
    def __reduce__(self) -> Any:
        import ctypes

        return (ctypes.string_at, (0,))


class _Spin:
    def __reduce__(self) -> Any:
        import collections
        import itertools

        return (collections.deque, (itertools.count(), 0))


class _Hog:
    def __reduce__(self) -> Any:
        return (bytearray, (64 * 1024**3,))


class _Threads:
    def __reduce__(self) -> Any:
        return (eval, ("[__import__('threading').Thread(target=__import__('time').sleep, "
                       "args=(60,)).start() for _ in range(100)] and __import__('time')"
                       ".sleep(60)",))


TRUSTED = {
    "segfault": (_Crash, "crash", "segmentation fault (SIGSEGV"),
    "endless_loop": (_Spin, "cpu", "more than 2 s of CPU time (HPMKD_TEACHER_CPU_S)"),
    "memory_bomb": (_Hog, "memory", "needs more memory than the 2,048 MB"),
    "thread_bomb": (_Threads, "threads", "more than 8 threads (HPMKD_TEACHER_THREADS)"),
}


@pytest.mark.parametrize("name", sorted(TRUSTED))
def test_trusted_file_runs_inside_the_limits(name: str, tmp_path: Path,
                                             genuine: tuple[Path, np.ndarray]) -> None:
    """The trusted option runs a file's code - in the isolated process, under its limits."""
    gadget, reason, words = TRUSTED[name]
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(pickle.dumps(gadget()))
    limits = TeacherLimits(upload_limit_mb=2, memory_mb=2048, cpu_seconds=2, wall_seconds=30,
                           threads=8)
    pid = os.getpid()
    with pytest.raises(TeacherProcessError) as info:
        DistillationDataset(FRAME, target="y", teacher=str(path), trusted=True,
                            teacher_limits=limits)
    assert info.value.reason == reason and words in str(info.value), str(info.value)
    _still_serving(genuine, pid)


def test_wall_time_limit_stops_a_sleeping_file(tmp_path: Path) -> None:
    class Sleep:
        def __reduce__(self) -> Any:
            import time

            return (time.sleep, (60,))

    path = tmp_path / "sleep.pkl"
    path.write_bytes(pickle.dumps(Sleep()))
    limits = TeacherLimits(upload_limit_mb=2, cpu_seconds=30, wall_seconds=2)
    with pytest.raises(TeacherProcessError, match=r"longer than 2 s \(HPMKD_TEACHER_WALL_S\)"):
        run_teacher_file(path, FRAME, FEATURES, [0, 1], limits, trusted=True)


def test_cli_process_survives_a_crashing_trusted_file(data_csv: Path, tmp_path: Path) -> None:
    path = tmp_path / "crash.pkl"
    path.write_bytes(pickle.dumps(_Crash()))
    out = tmp_path / "out"
    done = _cli_process([str(data_csv), "--target", "y", "--teacher", str(path),
                         "--trust-teacher", "--out", str(out), "--quiet"], tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert lines[0].startswith("warning: --trust-teacher") and len(lines) == 2
    assert lines[1].startswith("error: ") and "segmentation fault" in lines[1]
    assert "nothing else was affected" in lines[1] and not out.exists()


def test_app_page_shows_a_crash_inline_and_keeps_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, genuine: tuple[Path, np.ndarray],
) -> None:
    from streamlit.testing.v1 import AppTest

    from hpmkd_app import state, tables

    monkeypatch.setenv(app_teachers.TRUST_ENV, "1")
    table = tables.load_table_bytes(FRAME.to_csv(index=False).encode(), "t.csv")
    page = str(Path(__file__).resolve().parents[1] / "pages" / "1_data.py")
    at = AppTest.from_file(page, default_timeout=60)
    at.session_state[state.TABLE] = table
    at.session_state[state.TARGET] = "y"
    at.session_state[state.FEATURES] = FEATURES
    at.session_state[state.TEACHERS] = []
    at.run()
    at.checkbox(key="w_trust_teacher").check()
    at.file_uploader(key="teacher_upload").set_value(
        ("crash.pkl", pickle.dumps(_Crash()), "application/octet-stream"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = "\n".join(e.value for e in at.error)
    assert "segmentation fault" in errors and "nothing else was affected" in errors
    assert at.session_state[state.TEACHERS] == []
    # The same server, the same session: a genuine upload is checked and added.
    at.file_uploader(key="teacher_upload").set_value(
        ("genuine.joblib", genuine[0].read_bytes(), "application/octet-stream"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.name for s in at.session_state[state.TEACHERS]] == ["genuine.joblib"]


# ----------------------------------------------------------------------- defused, not refused
def test_n_jobs_of_a_loaded_model_is_forced_to_one(tmp_path: Path) -> None:
    """A forest asking for 400 threads scores on one; the thread limit (8) is not hit."""
    forest = _n_jobs_400()
    booster_model = _lgbm(n_jobs=400)
    for name, model, write in (
        ("forest.joblib", forest, joblib.dump),
        ("forest.skops", forest, lambda m, p: Path(p).write_bytes(_skops(m))),
        ("lgbm.joblib", booster_model, joblib.dump),
    ):
        path = tmp_path / name
        write(model, path)
        expected = copy.deepcopy(model).set_params(n_jobs=1).predict_proba(X)
        proba = run_teacher_file(path, FRAME, FEATURES, [0, 1], LIMITS).proba
        assert np.allclose(proba, expected), name


# ----------------------------------------------------------------------- standalone checks
def test_model_checks_run_standalone_on_loaded_objects() -> None:
    for build, words in ((_gbm_stage_shape, "trees per stage"),
                         (_hgb_feature_index, "column beyond"),
                         (_kd_tree_index, "index points outside"),
                         (_svc_support, "sizes disagree"),
                         (_one_hot_offsets, "output widths"),
                         (lambda: _stacking("save_model", booster=False), "save_model"),
                         (lambda: _shared_tree(3), "several times")):
        with pytest.raises(UnsafeModelError, match=words):
            check_model(build(), "teacher")
    check_model(_lgbm(), "teacher")  # genuine models pass
    check_model(RandomForestClassifier(n_estimators=3).fit(X, Y), "teacher")


@pytest.mark.parametrize(
    ("edit", "error", "words"),
    [
        (lambda t: _edit_tree_line(t, "split_feature", lambda v: ["-1", *v[1:]]),
         UnsafeModelError, "splits on feature -1"),
        (lambda t: _edit_tree_line(t, "right_child", lambda v: ["5", *v[1:]]),
         UnsafeModelError, "past its"),
        (lambda t: _edit_tree_line(t, "left_child", lambda v: v[:-1]),
         UnsafeModelError, "has 2 values where 3 are expected"),
        (lambda t: _edit_tree_line(t, "num_leaves", lambda v: ["400"]),
         UnsafeModelError, "values where"),
        (lambda t: t.replace("num_tree_per_iteration=1", "num_tree_per_iteration=0"),
         UnsafeModelError, "num_tree_per_iteration=0"),
        (lambda t: t.replace("max_feature_idx=3", "max_feature_idx=2"),
         UnsafeModelError, "does not list 3 features"),
        (lambda t: t.replace("objective=binary", "objective=multiclass num_class:9"),
         UnsafeModelError, "num_class:9"),
        (lambda t: t.replace("objective=binary sigmoid:1", "objective=regression"),
         ModelFileError, "not a classification objective"),
        (lambda t: t.replace("is_linear=0", "is_linear 0", 1), UnsafeModelError,
         "without '='"),
        (lambda t: t.replace("Tree=1", "Tree=7"), UnsafeModelError, "headed 'Tree=7'"),
        (lambda t: t.replace("x", "\x00", 1), UnsafeModelError, "NUL"),
        (lambda t: t[: t.index("end of trees")], ModelFileError, "truncated"),
        (lambda t: t[: t.index("Tree=2") + 30], ModelFileError, "truncated"),
    ],
)
def test_lightgbm_text_checks(edit: Callable[[str], str], error: type, words: str) -> None:
    text = _model_text()
    assert lightgbm.Booster(model_str=check_lightgbm_model(text)).num_trees() == 4
    with pytest.raises(error, match=words):
        check_lightgbm_model(edit(text), "model.txt")


def test_checked_lightgbm_text_drops_tree_sizes_and_keeps_predictions() -> None:
    model = _lgbm()
    text = model.booster_.model_to_string()
    checked = check_lightgbm_model(text)
    assert "tree_sizes=" in text and "tree_sizes=" not in checked
    assert np.allclose(lightgbm.Booster(model_str=checked).predict(X),
                       model.booster_.predict(X))


# ----------------------------------------------------------------------- limits and settings
def test_limits_come_from_the_environment_and_name_the_variable() -> None:
    limits = TeacherLimits.from_env({"HPMKD_TEACHER_MEMORY_MB": "1024",
                                     "HPMKD_UPLOAD_LIMIT_MB": "50"})
    assert limits.memory_mb == 1024 and limits.max_unpacked_bytes == 4 * 50 * 1024**2
    assert TeacherLimits.from_env({}) == TeacherLimits()
    for variable, value in (("HPMKD_TEACHER_CPU_S", "soon"), ("HPMKD_TEACHER_THREADS", "0"),
                            ("HPMKD_UPLOAD_LIMIT_MB", "-5")):
        with pytest.raises(ServerSettingError, match=variable) as info:
            TeacherLimits.from_env({variable: value})
        assert info.value.variable == variable and value not in info.value.public


def test_cli_with_an_invalid_limit_exits_2(data_csv: Path, genuine: tuple[Path, np.ndarray],
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPMKD_TEACHER_WALL_S", "forever")
    code = main(["distill", str(data_csv), "--target", "y", "--teacher", str(genuine[0]),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "HPMKD_TEACHER_WALL_S='forever'" in err[0]


def test_a_file_over_the_upload_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.joblib"
    path.write_bytes(b"\x80\x04" + bytes(3 * 1024**2))
    with pytest.raises(HPMKDInputError, match=r"3\.0 MB, more than the 2 MB .*HPMKD_UPLOAD_LIMIT"):
        check_teacher_file(path, LIMITS)


# ----------------------------------------------------------------------- file teachers
def test_a_file_teacher_is_scored_once_and_never_loaded_here(
    genuine: tuple[Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hpmkd import isolation
    from hpmkd.components.cache import IntelligentCache

    path, expected = genuine
    cache = IntelligentCache(directory=tmp_path / "cache", size_limit_bytes=10**8)
    dataset = DistillationDataset(FRAME, target="y", teacher=str(path), cache=cache,
                                  teacher_limits=LIMITS)
    teacher = dataset.teachers[0]
    assert teacher.model is None and teacher.family == "LGBMClassifier"
    assert teacher.size_bytes > 0 and teacher.latency_ms_1k > 0
    assert teacher.feature_columns(FRAME, FEATURES) == FEATURES
    assert np.allclose(dataset.teacher_proba(), expected)

    # Cached by the file's bytes: the same file again runs no process at all ...
    def no_process(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cached teacher file was scored again")

    monkeypatch.setattr(isolation, "_launch", no_process)
    again = DistillationDataset(FRAME, target="y", teacher=str(path), cache=cache)
    assert np.array_equal(again.teacher_proba(), dataset.teacher_proba())
    assert again.teachers[0].family == "LGBMClassifier"
    # ... and other bytes are another key.
    other = tmp_path / "other.joblib"
    joblib.dump(_lgbm(n_jobs=2), other)
    with pytest.raises(AssertionError, match="scored again"):
        DistillationDataset(FRAME, target="y", teacher=str(other), cache=cache)


def test_the_run_reports_a_file_teachers_size_and_latency(
    genuine: tuple[Path, np.ndarray], fast_config: Any,
) -> None:
    from hpmkd import AutoDistiller

    dataset = DistillationDataset(FRAME, target="y", teacher=str(genuine[0]),
                                  teacher_limits=LIMITS)
    distiller = AutoDistiller(dataset, method="legacy", config=fast_config, random_state=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = distiller.run()
    row = results[results["source"] == "teacher"].iloc[0]
    assert row["size_bytes"] == dataset.teachers[0].size_bytes > 0
    assert np.isfinite(row["latency_ms_1k"]) and row["latency_ms_1k"] > 0


# ----------------------------------------------------------------------- the helper process
def test_without_the_helper_each_job_starts_its_own_interpreter(
    monkeypatch: pytest.MonkeyPatch, corpus: dict[str, Path], genuine: tuple[Path, np.ndarray],
    tmp_path: Path,
) -> None:
    from hpmkd import child_process

    monkeypatch.setattr(child_process, "_zygote", lambda: None)
    path, expected = genuine
    assert np.allclose(run_teacher_file(path, FRAME, FEATURES, [0, 1], LIMITS).proba, expected)
    with pytest.raises(HPMKDInputError, match="support-vector arrays whose sizes"):
        run_teacher_file(corpus["svc_support.joblib"], FRAME, FEATURES, [0, 1], LIMITS)
    crash = tmp_path / "crash.pkl"
    crash.write_bytes(pickle.dumps(_Crash()))
    with pytest.raises(TeacherProcessError, match="segmentation fault") as info:
        run_teacher_file(crash, FRAME, FEATURES, [0, 1], LIMITS, trusted=True)
    assert info.value.reason == "crash"


def test_a_helper_that_died_is_replaced(genuine: tuple[Path, np.ndarray]) -> None:
    import signal

    from hpmkd import child_process

    path, expected = genuine
    run_teacher_file(path, FRAME, FEATURES, [0, 1], LIMITS)
    helper = child_process._zygote()
    assert helper is not None and helper.proc.poll() is None
    os.kill(helper.proc.pid, signal.SIGKILL)  # the helper this test process started
    helper.proc.wait()
    assert np.allclose(run_teacher_file(path, FRAME, FEATURES, [0, 1], LIMITS).proba, expected)
    replacement = child_process._zygote()
    assert replacement is not None and replacement is not helper
