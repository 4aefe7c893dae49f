"""FunctionTransformer gadgets stay refused, with no side effect, from the API, CLI and app.

Admitting ``FunctionTransformer`` (every fitted ``"passthrough"`` is one) must not admit
the callables it can hold. Each gadget below sits where a real one would - in the
fitted ColumnTransformer of a real pipeline, ``step "prep" -> "num"`` - and would create
a marker file if it ever ran. The restricted loader must refuse it, name the step and
the callable, and leave no marker; a plain ``pickle.loads`` of the same bytes shows that
the payload is live.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import pickletools
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, SplineTransformer
from sklearn.utils.validation import check_array

from hpmkd.errors import HPMKDInputError
from hpmkd.safe_load import UnsafeModelError, load_model_bytes, load_model_file
from hpmkd_app import teachers as app_teachers

STEP = 'step "prep" -> "num"'
COLUMNS = ["a", "b"]


def _frame(n: int = 60) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(n, 2)), columns=COLUMNS)
    y = (X["a"] + 0.5 * rng.normal(size=n) > 0).astype(int).to_numpy()
    return X, y


def _pipeline(func: Any = None, **ft_attrs: Any) -> Pipeline:
    """A fitted pipeline whose passthrough FunctionTransformer then gets ``func``.

    The gadget is put in after fitting, so nothing runs while the test builds it.
    """
    X, y = _frame()
    prep = ColumnTransformer([("num", "passthrough", COLUMNS)])
    pipe = Pipeline([("prep", prep), ("model", LogisticRegression())]).fit(X, y)
    ft = pipe.named_steps["prep"].transformers_[0][1]
    assert type(ft) is FunctionTransformer and ft.func is None  # what sklearn made of it
    ft.func = func
    for name, value in ft_attrs.items():
        setattr(ft, name, value)
    return pipe


class _FakeGlobal:
    """Pickles as a bare global ``module.name`` (e.g. ``__main__.<lambda>``)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __reduce__(self) -> str:
        return self.name

    def __call__(self, *args: Any) -> Any:  # pickle wants reduce functions callable
        raise AssertionError("a stand-in for a global, never called")


class _GlobalWriter(pickle._Pickler):  # type: ignore[name-defined,misc]
    """The pure-Python pickler, writing :class:`_FakeGlobal` as the global it names."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if isinstance(obj, _FakeGlobal):
            self.save(obj.module)
            self.save(obj.name)
            self.write(pickle.STACK_GLOBAL)
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _dump_with_fake_global(model: Any) -> bytes:
    buffer = io.BytesIO()
    _GlobalWriter(buffer, protocol=4).dump(model)
    data = buffer.getvalue()
    pickletools.dis(data, out=io.StringIO())  # a well-formed pickle
    return data


def _touch_args(marker: Path) -> dict[str, tuple[Any, tuple[Any, ...], str]]:
    """label -> (gadget, arguments that make it create ``marker``, name the refusal shows)."""
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": (os.system, (f"touch {marker}",), "posix.system"),
        "builtins.eval": (eval, (code,), "builtins.eval"),
        "builtins.exec": (exec, (code,), "builtins.exec"),
        "subprocess.Popen": (subprocess.Popen, (["touch", str(marker)],), "subprocess.Popen"),
        "subprocess.check_output": (
            subprocess.check_output,
            (["touch", str(marker)],),
            "subprocess.check_output",
        ),
        "functools.partial(os.system)": (
            functools.partial(os.system),
            (f"touch {marker}",),
            "posix.system",
        ),
        "functools.partial(subprocess.run, shell=True)": (
            functools.partial(subprocess.run, shell=True),
            (f"touch {marker}",),
            "subprocess.run",
        ),
    }


GADGETS = sorted(_touch_args(Path("x")))


def _gadget_bytes(label: str, marker: Path, kind: str = "joblib") -> tuple[bytes, str]:
    func, _args, shown = _touch_args(marker)[label]
    if kind == "pickle":
        return pickle.dumps(_pipeline(func), protocol=5), shown
    buffer = io.BytesIO()
    joblib.dump(_pipeline(func), buffer)
    return buffer.getvalue(), shown


@pytest.mark.parametrize("label", GADGETS)
def test_gadget_is_live_when_loaded_plainly(label: str, tmp_path: Path) -> None:
    # The control: plain joblib/pickle hand out the real callable, which runs.
    marker = tmp_path / "MARKER"
    _func, args, _shown = _touch_args(marker)[label]
    for kind in ("joblib", "pickle"):
        data, _ = _gadget_bytes(label, marker, kind)
        plain = joblib.load(io.BytesIO(data)) if kind == "joblib" else pickle.loads(data)
        result = plain.named_steps["prep"].transformers_[0][1].func(*args)
        if isinstance(result, subprocess.Popen):
            result.wait(timeout=30)
        assert marker.exists(), (label, kind)
        marker.unlink()


@pytest.mark.parametrize("kind", ["joblib", "pickle"])
@pytest.mark.parametrize("label", GADGETS)
def test_gadget_is_refused_without_side_effect(label: str, kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    data, shown = _gadget_bytes(label, marker, kind)
    suffix = ".joblib" if kind == "joblib" else ".pkl"
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(data)
    with pytest.raises(UnsafeModelError) as info:
        load_model_file(path)
    message = str(info.value)
    assert f"'{shown}'" in message or f'"{shown}"' in message, message
    assert str(path) in message and "NOT loaded" in message
    assert "--trust-teacher" in message  # says what to do
    if not label.startswith("functools.partial"):
        # Held as a value: refused after loading, naming the step.
        assert f'{STEP} is a FunctionTransformer that calls "{shown}"' in message, message
    assert not marker.exists()


def test_lambda_is_refused(tmp_path: Path) -> None:
    cloudpickle = pytest.importorskip("cloudpickle")
    marker = tmp_path / "MARKER"
    path_text = str(marker)
    gadget = lambda X: (open(path_text, "w").close(), X)[1]  # noqa: E731
    live = cloudpickle.dumps(_pipeline(gadget))
    pickle.loads(live).predict_proba(_frame()[0])  # the control: it runs
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafeModelError, match=r"cloudpickle.*a lambda.*NOT loaded") as info:
        load_model_bytes(live, "lambda.pkl")
    assert "nothing in it was run" in str(info.value)
    # A lambda as plain pickle would name it: __main__.<lambda> (written by hand).
    handmade = _dump_with_fake_global(_pipeline(_FakeGlobal("__main__", "<lambda>")))
    with pytest.raises(UnsafeModelError) as info:
        load_model_bytes(handmade, "lambda.joblib")
    assert f'{STEP} is a FunctionTransformer that calls "__main__.<lambda>"' in str(info.value)
    assert not marker.exists()


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """``mymodule.clean``: a user's own function, importable, with side effects.

    Importing the module creates ``IMPORTED``; calling ``clean`` creates ``CALLED``.
    The pickle is built with the module imported, then the module is forgotten.
    """
    folder = tmp_path / "usercode"
    folder.mkdir()
    imported, called = tmp_path / "IMPORTED", tmp_path / "CALLED"
    (folder / "mymodule.py").write_text(
        textwrap.dedent(
            f"""
            import pathlib
            pathlib.Path({str(imported)!r}).touch()

            def clean(X):
                pathlib.Path({str(called)!r}).touch()
                return X

            from sklearn.base import BaseEstimator, TransformerMixin

            class Shift(TransformerMixin, BaseEstimator):
                def fit(self, X, y=None):
                    return self

                def transform(self, X):
                    pathlib.Path({str(called)!r}).touch()
                    return X + 1
            """
        )
    )
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("mymodule", None)
    import mymodule  # type: ignore[import-not-found]

    X, y = _frame()
    prep = ColumnTransformer([("num", FunctionTransformer(mymodule.clean), COLUMNS)])
    pipe = Pipeline([("prep", prep), ("model", LogisticRegression())]).fit(X, y)
    path = tmp_path / "custom.joblib"
    joblib.dump(pipe, path)
    expected = pipe.predict_proba(X)
    custom_class = tmp_path / "custom_class.joblib"
    joblib.dump(Pipeline([("shift", mymodule.Shift()), ("model", LogisticRegression())])
                .fit(X, y), custom_class)
    sys.modules.pop("mymodule", None)  # forgotten: loading must not bring it back
    imported.unlink()
    called.unlink()
    yield {
        "path": path,
        "custom_class": custom_class,
        "folder": folder,
        "imported": imported,
        "called": called,
        "X": X,
        "y": y,
        "expected": expected,
    }
    sys.modules.pop("mymodule", None)


def test_users_own_function_is_refused_naming_step_and_function(user_module: dict) -> None:
    # The message: step "prep" calls "mymodule.clean" - and what to do.
    with pytest.raises(UnsafeModelError) as info:
        load_model_file(user_module["path"])
    message = str(info.value)
    assert f'{STEP} is a FunctionTransformer that calls "mymodule.clean"' in message
    assert "func=None" in message and "np.log1p" in message  # what it may hold instead
    assert "--trust-teacher" in message and "--teacher-proba-cols" in message
    assert "crafted" not in message  # a user's own function is not an attack
    # Importable, yet never imported (importing alone would run its code).
    assert "mymodule" not in sys.modules
    assert not user_module["imported"].exists() and not user_module["called"].exists()


def test_users_own_class_is_refused_naming_the_step(user_module: dict) -> None:
    with pytest.raises(UnsafeModelError) as info:
        load_model_file(user_module["custom_class"])
    message = str(info.value)
    assert 'step "shift" is a "mymodule.Shift" object' in message, message
    assert "not on the list of classes allowed" in message and "--trust-teacher" in message
    assert "mymodule" not in sys.modules
    assert not user_module["imported"].exists() and not user_module["called"].exists()


# ---------------------------------------------------------------------------------------
# Allow-listed pieces in the wrong place
# ---------------------------------------------------------------------------------------


def _refusal(model: Any) -> str:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    with pytest.raises(UnsafeModelError) as info:
        load_model_bytes(buffer.getvalue(), "model.joblib")
    return str(info.value)


def test_allowed_classes_are_not_functions() -> None:
    # Classes on the allow list are callable; a FunctionTransformer may not call them.
    # (Booster(X, model_file=...) would read any path.)
    message = _refusal(_pipeline(lightgbm.Booster, kw_args={"model_file": "/etc/passwd"}))
    assert f'{STEP} is a FunctionTransformer that calls "lightgbm.basic.Booster"' in message
    assert "LogisticRegression" in _refusal(_pipeline(LogisticRegression))
    assert '"builtins.dict"' in _refusal(_pipeline(dict))


def test_numpy_functions_take_only_their_own_keywords() -> None:
    target = np.zeros((60, 2))
    message = _refusal(_pipeline(np.log1p, kw_args={"out": target}))
    assert STEP in message and "out" in message
    assert "where" in _refusal(_pipeline(np.clip, kw_args={"a_min": 0, "where": True}))
    assert "not a plain" in _refusal(_pipeline(np.clip, kw_args={"a_min": LogisticRegression()}))
    assert "inverse_func" in _refusal(_pipeline(np.log1p, inverse_func=dict))
    assert "feature_names_out" in _refusal(_pipeline(None, feature_names_out=np.log1p))
    assert "kw_args" in _refusal(_pipeline(None, kw_args={"x": 1}))
    # Allowed ones load and still predict the same.
    pipe = _pipeline(np.clip, kw_args={"a_min": -1.0, "a_max": 1.0})
    buffer = io.BytesIO()
    joblib.dump(pipe, buffer)
    X = _frame()[0]
    loaded = load_model_bytes(buffer.getvalue(), "clip.joblib")
    assert np.array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_partial_of_check_array_only_with_plain_keywords() -> None:
    bad = functools.partial(check_array, estimator=LogisticRegression())
    assert "estimator" in _refusal(_pipeline(bad))
    assert "check_array" in _refusal(_pipeline(functools.partial(np.log1p)))
    assert "outside a FunctionTransformer" in _refusal(
        {"helper": functools.partial(check_array, dtype=np.float64)}
    )


def test_allowed_function_outside_a_function_transformer() -> None:
    X, y = _frame()
    knn = KNeighborsClassifier(algorithm="brute").fit(X, y)
    knn.metric = np.log1p  # would be called with (row, row): out= the second row
    message = _refusal(knn)
    assert '"numpy.log1p" outside a FunctionTransformer' in message
    assert "attribute 'metric'" in message


def _program(*body: bytes) -> bytes:
    data = pickle.PROTO + b"\x04" + b"".join(body) + pickle.STOP
    pickletools.dis(data, out=io.StringIO())
    return data


def _s(text: str) -> bytes:
    raw = text.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw


def _global(module: str, name: str) -> bytes:
    return _s(module) + _s(name) + pickle.STACK_GLOBAL


def _call(func: bytes, *args: bytes) -> bytes:
    return func + pickle.MARK + b"".join(args) + pickle.TUPLE + pickle.REDUCE


def test_functions_are_never_called_while_loading(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    payloads = {
        # np.clip(a, lo, hi, out) would write into an array after it was checked.
        "numpy.clip called": _call(
            _global("numpy", "clip"), pickle.BININT1 + b"\x01", pickle.NONE, pickle.NONE
        ),
        "check_array called": _call(
            _global("sklearn.utils.validation", "check_array"), pickle.EMPTY_LIST
        ),
        # numpy < 1.20 wrote ufuncs this way; the real function imports anything.
        "_ufunc_reconstruct of os.system": _call(
            _call(_global("numpy.core", "_ufunc_reconstruct"), _s("os"), _s("system")),
            _s(f"touch {marker}"),
        ),
        "_ufunc_reconstruct of a numpy function": _call(
            _global("numpy._core", "_ufunc_reconstruct"), _s("numpy"), _s("clip")
        ),
        "partial of os.system": _call(
            _call(_global("functools", "partial"), _global("os", "system")),
            _s(f"touch {marker}"),
        ),
        "partial of an allowed class": _call(
            _global("functools", "partial"), _global("lightgbm.basic", "Booster")
        ),
        # An object of a refused class is inert: calling it is refused too.
        "object of a refused class, called": _call(
            _global("os", "system") + pickle.EMPTY_TUPLE + pickle.NEWOBJ,
            _s(f"touch {marker}"),
        ),
        "object of a refused class, used as a class": _global("os", "system")
        + pickle.EMPTY_TUPLE
        + pickle.NEWOBJ
        + pickle.EMPTY_TUPLE
        + pickle.NEWOBJ,
    }
    for label, body in payloads.items():
        with pytest.raises(UnsafeModelError, match=r"evil\.pkl.*NOT loaded"):
            load_model_bytes(_program(body), "evil.pkl")
        assert not marker.exists(), label
    # The one legitimate old-numpy form still loads: an allowed ufunc, where a model
    # holds it.
    old = _dump_with_fake_global(_pipeline(_OldNumpyUfunc("log1p")))
    ft = load_model_bytes(old, "old.pkl").named_steps["prep"].transformers_[0][1]
    assert ft.func is np.log1p


class _OldNumpyUfunc:
    """Pickles as numpy < 1.20 pickled a ufunc: ``numpy.core._ufunc_reconstruct``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (_FakeGlobal("numpy.core", "_ufunc_reconstruct"), ("numpy", self.name))


def test_crafted_splines_are_refused() -> None:
    X, y = _frame()
    pipe = make_pipeline(SplineTransformer(n_knots=4), LogisticRegression()).fit(X, y)
    spline = pipe[0].bsplines_[0]
    original = spline._c
    spline._c = original[:2].copy()  # fewer coefficients than the knots need
    assert "B-spline" in _refusal(pipe)
    spline._c = original
    spline._asarray = np.log1p  # called on every evaluation
    assert "B-spline" in _refusal(pipe)


def test_skops_files_get_the_same_function_checks(tmp_path: Path) -> None:
    skops_io = pytest.importorskip("skops.io")
    # skops trusts numpy ufuncs by default; a FunctionTransformer may hold only ours.
    path = tmp_path / "add.skops"
    skops_io.dump(_pipeline(np.add), path)
    with pytest.raises(UnsafeModelError) as info:
        load_model_file(path)
    assert f'{STEP} is a FunctionTransformer that calls "numpy.add"' in str(info.value)
    path = tmp_path / "system.skops"
    skops_io.dump(_pipeline(os.system), path)
    with pytest.raises(UnsafeModelError, match=r"posix\.system"):
        load_model_file(path)
    path = tmp_path / "log1p.skops"
    skops_io.dump(_pipeline(np.log1p, kw_args={"out": np.zeros((60, 2))}), path)
    with pytest.raises(UnsafeModelError, match="out"):
        load_model_file(path)


# ---------------------------------------------------------------------------------------
# The same refusals from the CLI and the app
# ---------------------------------------------------------------------------------------


def _write_data(folder: Path) -> Path:
    X, y = _frame()
    data = folder / "data.csv"
    X.assign(y=y).to_csv(data, index=False)
    return data


def _cli(args: list[str], cwd: Path, project_root: Path, venv_python: Path,
         extra_path: str = "") -> subprocess.CompletedProcess:
    pythonpath = os.pathsep.join(p for p in (str(project_root), extra_path) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath, "HPMKD_HOME": str(cwd / "home")}
    return subprocess.run(
        [str(venv_python), "-m", "hpmkd", "distill", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
    )


@pytest.mark.parametrize("label", ["os.system", "functools.partial(os.system)"])
def test_cli_refuses_gadget_with_one_error_line(
    label: str, tmp_path: Path, project_root: Path, venv_python: Path
) -> None:
    marker = tmp_path / "MARKER"
    data, shown = _gadget_bytes(label, marker)
    evil = tmp_path / "evil.joblib"
    evil.write_bytes(data)
    out = tmp_path / "out"
    done = _cli([str(_write_data(tmp_path)), "--target", "y", "--teacher", str(evil),
                 "--out", str(out)], tmp_path, project_root, venv_python)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert shown in lines[0] and "evil.joblib" in lines[0] and "NOT loaded" in lines[0]
    assert not marker.exists() and not out.exists()


def test_cli_refuses_users_own_function_even_when_importable(
    user_module: dict, tmp_path: Path, project_root: Path, venv_python: Path
) -> None:
    out = tmp_path / "out"
    done = _cli(
        [str(_write_data(tmp_path)), "--target", "y", "--teacher", str(user_module["path"]),
         "--out", str(out)],
        tmp_path, project_root, venv_python, extra_path=str(user_module["folder"]),
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f'{STEP} is a FunctionTransformer that calls "mymodule.clean"' in lines[0]
    assert not user_module["imported"].exists() and not user_module["called"].exists()
    assert not out.exists()


@pytest.mark.parametrize("label", ["os.system", "subprocess.Popen", "builtins.eval"])
def test_app_upload_refuses_gadget(
    label: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(app_teachers.TRUST_ENV, raising=False)
    marker = tmp_path / "MARKER"
    data, shown = _gadget_bytes(label, marker)
    with pytest.raises(HPMKDInputError, match="NOT loaded") as info:
        app_teachers.check_model_bytes(data, "evil.joblib")
    assert shown in str(info.value) and STEP in str(info.value)
    # Asking for a trusted load is refused too: the server did not opt in.
    with pytest.raises(HPMKDInputError, match=app_teachers.TRUST_ENV):
        app_teachers.check_model_bytes(data, "evil.joblib", trusted=True)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------
# The escape hatch: a user's own file on their own machine
# ---------------------------------------------------------------------------------------


def test_api_trusted_loads_plainly_and_says_so(user_module: dict) -> None:
    from hpmkd import DistillationDataset

    frame = user_module["X"].assign(y=user_module["y"])
    with pytest.raises(HPMKDInputError, match=r'calls "mymodule\.clean"'):
        DistillationDataset(frame, target="y", teacher=str(user_module["path"]))
    assert not user_module["imported"].exists()
    dataset = DistillationDataset(frame, target="y", teacher=str(user_module["path"]),
                                  trusted=True)
    # Plain joblib: the module was imported (its code ran), and the function is used.
    assert user_module["imported"].exists() and user_module["called"].exists()
    assert dataset.teacher_trusted is True and dataset.teachers[0].trusted is True
    # The same model and rows; the last bit may differ: hpmkd scores the teacher its own
    # way (another call shape for the matrix kernels), and OpenBLAS's Haswell kernels
    # then round 6 of these 120 values one ulp (1.1e-16) apart; a reload scored here is
    # bit-identical.
    np.testing.assert_allclose(dataset.teacher_proba(), user_module["expected"], rtol=0,
                               atol=1e-12)
    # Probability columns are never "loaded": trusted=True changes nothing for them.
    with_proba = frame.assign(p0=0.4, p1=0.6)
    only_columns = DistillationDataset(
        with_proba, target="y", teacher_proba_cols=["p0", "p1"], trusted=True
    )
    assert only_columns.teacher_trusted is False
    # A trusted load that cannot import what the file needs says so, as input error.
    sys.modules.pop("mymodule", None)
    sys.path.remove(str(user_module["folder"]))
    with pytest.raises(HPMKDInputError, match=r"unrestricted \(trusted\) load failed.*mymodule"):
        DistillationDataset(frame, target="y", teacher=str(user_module["path"]), trusted=True)


def test_cli_trust_teacher_flag(
    user_module: dict, tmp_path: Path, project_root: Path, venv_python: Path
) -> None:
    import json

    X, y = _frame(300)
    data = tmp_path / "data.csv"
    X.assign(y=y).to_csv(data, index=False)
    out = tmp_path / "out"
    small = ["--method", "legacy", "--set", "families=tree", "--set", "temperatures=1",
             "--set", "alphas=0.5"]
    done = _cli(
        [str(data), "--target", "y", "--teacher", str(user_module["path"]), "--trust-teacher",
         *small, "--out", str(out)],
        tmp_path, project_root, venv_python, extra_path=str(user_module["folder"]),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first = done.stderr.splitlines()[0]
    assert first.startswith("warning: --trust-teacher") and "runs any code" in first
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher_trusted"] is True
    assert user_module["imported"].exists()  # plain joblib imported the user's module
    # The same run without the flag is refused (see above); a restricted run records false.
    safe_teacher = tmp_path / "safe.joblib"
    joblib.dump(_pipeline(None), safe_teacher)
    out2 = tmp_path / "out2"
    done = _cli([str(data), "--target", "y", "--teacher", str(safe_teacher), *small,
                 "--quiet", "--out", str(out2)], tmp_path, project_root, venv_python)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    assert json.loads((out2 / "summary.json").read_text())["teacher_trusted"] is False


def test_app_trust_needs_the_server_setting(
    user_module: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpmkd_app.tables import LoadedTable

    data = user_module["path"].read_bytes()
    for value in ("", "0", "no", "off", "2"):
        assert not app_teachers.trust_uploads_allowed({app_teachers.TRUST_ENV: value})
    assert app_teachers.trust_uploads_allowed({app_teachers.TRUST_ENV: "1"})
    monkeypatch.delenv(app_teachers.TRUST_ENV, raising=False)
    with pytest.raises(HPMKDInputError, match=r'calls "mymodule\.clean"'):
        app_teachers.check_model_bytes(data, "custom.joblib")
    with pytest.raises(HPMKDInputError, match="does not load uploaded model files"):
        app_teachers.check_model_bytes(data, "custom.joblib", trusted=True)
    assert not user_module["imported"].exists()

    monkeypatch.setenv(app_teachers.TRUST_ENV, "1")
    info = app_teachers.check_model_bytes(data, "custom.joblib", trusted=True)
    assert info.family == "Pipeline" and info.feature_names == COLUMNS
    # Loaded plainly - in the isolated process, never in the server's.
    assert user_module["imported"].exists() and "mymodule" not in sys.modules
    source = app_teachers.file_source(data, "custom.joblib", trusted=True)
    assert "trusted" in source.describe() and source.key() != app_teachers.file_source(
        data, "custom.joblib").key()
    frame = user_module["X"].assign(y=user_module["y"])
    table = LoadedTable(frame, "t.csv", "d" * 64, 1, "upload")

    def never(source: Any) -> Any:
        raise AssertionError("an uploaded file is never loaded in the app's process")

    dataset = app_teachers.build_dataset(table, "y", COLUMNS, [source], never)
    assert dataset.teacher_trusted is True
    # The same model and rows; the last bit may differ: hpmkd scores the teacher its own
    # way (another call shape for the matrix kernels), and OpenBLAS's Haswell kernels
    # then round 6 of these 120 values one ulp (1.1e-16) apart; a reload scored here is
    # bit-identical.
    np.testing.assert_allclose(dataset.teacher_proba(), user_module["expected"], rtol=0,
                               atol=1e-12)
    assert "mymodule" not in sys.modules
    untrusted = app_teachers.file_source(data, "custom.joblib")
    with pytest.raises(HPMKDInputError, match=r'calls "mymodule\.clean"'):
        app_teachers.build_dataset(table, "y", COLUMNS, [untrusted], never)


def test_app_page_offers_trust_only_when_the_server_opted_in(
    user_module: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from hpmkd_app import state, tables

    table = tables.load_table_bytes(
        user_module["X"].assign(y=user_module["y"]).to_csv(index=False).encode(), "t.csv"
    )
    upload = ("custom.joblib", user_module["path"].read_bytes(), "application/octet-stream")
    page = str(Path(__file__).resolve().parents[1] / "pages" / "1_data.py")

    def run(env: str | None, tick: bool) -> AppTest:
        if env is None:
            monkeypatch.delenv(app_teachers.TRUST_ENV, raising=False)
        else:
            monkeypatch.setenv(app_teachers.TRUST_ENV, env)
        at = AppTest.from_file(page, default_timeout=60)
        at.session_state[state.TABLE] = table
        at.session_state[state.TARGET] = "y"
        at.session_state[state.FEATURES] = list(COLUMNS)
        at.session_state[state.TEACHERS] = []
        at.run()
        if tick:
            at.checkbox(key="w_trust_teacher").check()
        at.file_uploader(key="teacher_upload").set_value(upload)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    default = run(None, tick=False)
    assert not [c for c in default.checkbox if c.key == "w_trust_teacher"]
    assert 'calls "mymodule.clean"' in "\n".join(e.value for e in default.error)
    assert default.session_state[state.TEACHERS] == []
    assert not user_module["imported"].exists()

    opted_in = run("1", tick=True)
    warning = "\n".join(w.value for w in opted_in.warning)
    assert app_teachers.TRUST_ENV in warning and "runs any code" in warning
    sources = opted_in.session_state[state.TEACHERS]
    assert [(s.name, s.trusted) for s in sources] == [("custom.joblib", True)]
    assert user_module["imported"].exists()
