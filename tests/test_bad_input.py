"""Bad input gives one clear HPMKDInputError that names the problem, from Python and from
the CLI (exit code 2, a single ``error:`` line on stderr, nothing written)."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.svm import LinearSVC

from hpmkd import DistillationDataset, HPMConfig, HPMKDInputError
from hpmkd.cli import main

FEATURES = ["f0", "f1", "f2", "f3", "f4"]


# ----------------------------------------------------------------------------- helpers
def dataset_error(*args, **kwargs) -> str:
    """The message of the HPMKDInputError that DistillationDataset(...) raises."""
    with pytest.raises(HPMKDInputError) as info:
        DistillationDataset(*args, **kwargs)
    message = str(info.value)
    assert "Traceback" not in message
    return message


def cli_error(capsys, tmp_path: Path, argv: list[str]) -> str:
    """Run the CLI in-process on bad input; check the error contract; return the line."""
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["distill", *argv, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err and "File \"" not in captured.err
    assert captured.out == ""
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    return lines[0]


def write(path: Path, content: bytes | str) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


@pytest.fixture
def data_csv(tmp_path, binary_frame) -> Path:
    path = tmp_path / "data.csv"
    binary_frame.to_csv(path, index=False)
    return path


@pytest.fixture
def proba_csv(tmp_path, binary_frame) -> Path:
    """The binary table plus valid teacher probability columns p0, p1."""
    frame = binary_frame.copy()
    score = 1 / (1 + np.exp(-(frame["f0"] + 0.7 * frame["f1"])))
    frame["p0"], frame["p1"] = 1 - score, score
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def teacher_file(tmp_path, binary_frame, fit_teacher) -> Path:
    path = tmp_path / "teacher.joblib"
    joblib.dump(fit_teacher(binary_frame[FEATURES], binary_frame["target"]), path)
    return path


# ----------------------------------------------------------------------------- data files
BAD_FILES = {
    "empty": (b"", ["empty", "0 bytes"]),
    "header_only": (b"f0,f1,target\n", ["header but no data rows"]),
    "one_row": (b"f0,f1,target\n0.5,1.5,1\n", ["single class", "at least two classes"]),
    "two_rows": (b"f0,f1,target\n0.5,1.5,1\n0.7,1.1,0\n", ["Too few rows", "at least 5"]),
    "duplicate_columns": (
        b"f0,f1,f0,target\n" + b"1,2,3,0\n4,5,6,1\n" * 10,
        ["duplicate column name", "'f0'", "unique"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_data_file(tmp_path, capsys, case):
    content, words = BAD_FILES[case]
    path = write(tmp_path / "data.csv", content)
    message = dataset_error(path, target="target")
    for word in words:
        assert word in message
    line = cli_error(capsys, tmp_path, [str(path), "--target", "target",
                                        "--teacher-proba-cols", "p0,p1"])
    for word in words:
        assert word in line


def test_duplicate_columns_in_a_dataframe():
    frame = pd.DataFrame(np.ones((20, 3)), columns=["a", "a", "target"])
    frame["target"] = np.arange(20) % 2
    assert "duplicate column name(s): 'a'" in dataset_error(frame, target="target")


def test_missing_data_file(tmp_path, capsys):
    message = dataset_error(tmp_path / "nope.csv", target="target")
    assert "does not exist" in message and "nope.csv" in message
    line = cli_error(capsys, tmp_path, [str(tmp_path / "nope.csv"), "--target", "target"])
    assert "does not exist" in line


@pytest.mark.parametrize("with_nul", [True, False], ids=["with_nul", "without_nul"])
def test_binary_garbage_named_csv(tmp_path, capsys, with_nul):
    rng = np.random.default_rng(123)
    low = 0 if with_nul else 1
    content = rng.integers(low, 256, size=4096, dtype=np.uint8).tobytes()
    if with_nul:
        content = content[:100] + b"\x00" + content[100:]
    assert (b"\x00" in content) == with_nul
    path = write(tmp_path / "data.csv", content)
    message = dataset_error(path, target="target")
    assert "looks binary" in message and "data.csv" in message
    line = cli_error(capsys, tmp_path, [str(path), "--target", "target"])
    assert "looks binary" in line


# ----------------------------------------------------------------------------- target column
def test_target_missing_suggests_the_close_name(data_csv, tmp_path, capsys):
    message = dataset_error(data_csv, target="targte")
    assert "'targte' is not in the data" in message
    assert "Did you mean 'target'" in message
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "targte",
                                        "--teacher-proba-cols", "p0,p1"])
    assert "Did you mean 'target'" in line


def test_target_case_mismatch_is_suggested(binary_frame):
    assert "Did you mean 'target'" in dataset_error(binary_frame, target="TARGET")


def test_target_with_one_class(binary_frame, proba_csv, tmp_path, capsys):
    frame = binary_frame.assign(target=1)
    message = dataset_error(frame, target="target")
    assert "single class" in message and "'target'" in message
    table = pd.read_csv(proba_csv).assign(target=1)
    table.to_csv(proba_csv, index=False)
    line = cli_error(capsys, tmp_path, [str(proba_csv), "--target", "target",
                                        "--teacher-proba-cols", "p0,p1"])
    assert "single class" in line


def test_all_missing_target(binary_frame, tmp_path, capsys):
    frame = binary_frame.assign(target=np.nan)
    message = dataset_error(frame, target="target")
    assert "Every value of target column 'target' is missing" in message
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    line = cli_error(capsys, tmp_path, [str(path), "--target", "target"])
    assert "is missing" in line


# ----------------------------------------------------------------------------- teacher files
def test_csv_renamed_as_teacher_joblib(data_csv, tmp_path, capsys):
    fake = tmp_path / "teacher.joblib"
    fake.write_bytes(data_csv.read_bytes())
    message = dataset_error(data_csv, target="target", teacher=fake)
    assert "teacher.joblib" in message and "not a saved model" in message
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target",
                                        "--teacher", str(fake)])
    assert "teacher.joblib" in line and "not a saved model" in line


def test_joblib_of_a_plain_dict_is_not_a_classifier(data_csv, tmp_path, capsys):
    path = tmp_path / "teacher.joblib"
    joblib.dump({"weights": [1, 2, 3]}, path)
    message = dataset_error(data_csv, target="target", teacher=path)
    assert "not a classifier" in message and "teacher.joblib" in message
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target",
                                        "--teacher", str(path)])
    assert "not a classifier" in line


def test_truncated_joblib(data_csv, teacher_file, tmp_path, capsys):
    content = teacher_file.read_bytes()
    truncated = write(tmp_path / "cut.joblib", content[: len(content) // 2])
    message = dataset_error(data_csv, target="target", teacher=truncated)
    assert "cut.joblib" in message and "truncated" in message
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target",
                                        "--teacher", str(truncated)])
    assert "cut.joblib" in line and "truncated" in line


class _Exploit:
    """Pickles to a call of ``os.system`` that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_pickle(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned_marker"
    path = tmp_path / "teacher.pkl"
    path.write_bytes(pickle.dumps(_Exploit(marker)))
    assert b"system" in path.read_bytes()
    return path, marker


def test_malicious_pickle_never_runs_through_the_dataset(data_csv, tmp_path):
    path, marker = _malicious_pickle(tmp_path)
    message = dataset_error(data_csv, target="target", teacher=path)
    assert "teacher.pkl" in message
    assert "system" in message  # names what it refused
    assert not marker.exists()


def test_malicious_pickle_never_runs_through_the_cli(data_csv, tmp_path, capsys):
    path, marker = _malicious_pickle(tmp_path)
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target",
                                        "--teacher", str(path)])
    assert "teacher.pkl" in line and "system" in line
    assert not marker.exists()


def test_malicious_pickle_in_a_real_cli_process(data_csv, tmp_path, project_root, venv_python):
    path, marker = _malicious_pickle(tmp_path)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(project_root)}
    done = subprocess.run(
        [str(venv_python), "-m", "hpmkd", "distill", str(data_csv), "--target", "target",
         "--teacher", str(path), "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "teacher.pkl" in lines[0] and "system" in lines[0]
    assert "Traceback" not in done.stderr
    assert not marker.exists()
    assert not out.exists()


def test_linear_regression_file_has_no_predict_proba(data_csv, binary_frame, tmp_path, capsys):
    path = tmp_path / "teacher.joblib"
    joblib.dump(LinearRegression().fit(binary_frame[FEATURES], binary_frame["target"]), path)
    message = dataset_error(data_csv, target="target", teacher=path)
    assert "LinearRegression" in message
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target",
                                        "--teacher", str(path)])
    assert "LinearRegression" in line


# ----------------------------------------------------------------------------- teacher objects
def test_fitted_object_without_predict_proba(binary_frame):
    svc = LinearSVC().fit(binary_frame[FEATURES], binary_frame["target"])
    message = dataset_error(binary_frame, target="target", teacher=svc)
    assert "'LinearSVC'" in message and "no predict_proba" in message
    assert "teacher_proba_cols" in message  # says what to do instead


def test_teacher_missing_features_names_them(binary_frame, fit_teacher, tmp_path, capsys):
    wide = binary_frame.assign(extra_a=1.0, extra_b=np.arange(400.0))
    teacher = fit_teacher(wide[[*FEATURES, "extra_a", "extra_b"]], wide["target"])
    message = dataset_error(binary_frame, target="target", teacher=teacher)
    assert "'extra_a'" in message and "'extra_b'" in message
    assert "not in the data" in message
    assert "'f0'" not in message
    path = tmp_path / "teacher.joblib"
    joblib.dump(teacher, path)
    data = tmp_path / "data.csv"
    binary_frame.to_csv(data, index=False)
    line = cli_error(capsys, tmp_path, [str(data), "--target", "target", "--teacher", str(path)])
    assert "'extra_a'" in line and "'extra_b'" in line


def test_teacher_with_three_classes_for_a_binary_target(make_frame, binary_frame, fit_teacher):
    three = make_frame(n_rows=300, n_classes=3, seed=4)
    teacher = fit_teacher(three[FEATURES], three["target"])
    message = dataset_error(binary_frame, target="target", teacher=teacher)
    assert "trained on classes [0, 1, 2]" in message
    assert "classes [0, 1]" in message


def test_teacher_with_string_classes_for_a_numeric_target(binary_frame, fit_teacher, tmp_path,
                                                          capsys):
    labels = np.where(binary_frame["target"] == 1, "yes", "no")
    teacher = fit_teacher(binary_frame[FEATURES], labels)
    message = dataset_error(binary_frame, target="target", teacher=teacher)
    assert "[no, yes]" in message and "[0, 1]" in message
    path = tmp_path / "teacher.joblib"
    joblib.dump(teacher, path)
    data = tmp_path / "data.csv"
    binary_frame.to_csv(data, index=False)
    line = cli_error(capsys, tmp_path, [str(data), "--target", "target", "--teacher", str(path)])
    assert "[no, yes]" in line


# ----------------------------------------------------------------------------- probability columns
def test_probability_columns_that_do_not_sum_to_one(binary_frame, tmp_path, capsys):
    frame = binary_frame.assign(p0=0.3, p1=0.3)
    frame.loc[:9, "p1"] = 0.7  # the first ten rows are fine
    message = dataset_error(frame, target="target", teacher_proba_cols=["p0", "p1"])
    assert "do not sum to 1" in message and "390 row(s)" in message
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    line = cli_error(capsys, tmp_path, [str(path), "--target", "target",
                                        "--teacher-proba-cols", "p0,p1"])
    assert "do not sum to 1" in line


def test_probability_columns_missing_or_wrong_count(binary_frame):
    frame = binary_frame.assign(p0=0.5, p1=0.5)
    assert "'p2' are not in the data" in dataset_error(
        frame, target="target", teacher_proba_cols=["p0", "p2"]
    )
    assert "one column per class" in dataset_error(
        frame, target="target", teacher_proba_cols=["p0"]
    )


# ----------------------------------------------------------------------------- configuration
def test_unknown_config_field():
    with pytest.raises(HPMKDInputError, match="HPMConfig has no field 'foo'"):
        HPMConfig(foo=1)
    with pytest.raises(HPMKDInputError, match="Did you mean max_configs"):
        HPMConfig(max_config=3)
    with pytest.raises(HPMKDInputError, match="no field 'max_config'"):
        HPMConfig.from_dict({"max_config": "3"})


def test_unknown_config_field_from_the_cli(data_csv, tmp_path, capsys):
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target", "--set", "foo=1"])
    assert "no field 'foo'" in line
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target",
                                        "--set", "max_config=3"])
    assert "Did you mean max_configs" in line
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target", "--set", "n_trials"])
    assert "KEY=VALUE" in line


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"validation_split": 2}, "validation_split=2 is invalid"),
        ({"n_trials": 0}, "n_trials=0 is invalid"),
        ({"alphas": (0.5, 1.5)}, "alphas"),
        ({"families": ("svm",)}, "families"),
        ({"selection_metric": "gini"}, "selection_metric='gini' is invalid"),
        ({"temperatures": (0.0,)}, "temperatures"),
    ],
)
def test_invalid_config_values(changes, words):
    with pytest.raises(HPMKDInputError, match=words):
        HPMConfig(**changes)


def test_invalid_config_values_from_the_cli(data_csv, tmp_path, capsys):
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target",
                                        "--set", "validation_split=2"])
    assert "validation_split=2.0 is invalid" in line and "between 0.05 and 0.5" in line
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target",
                                        "--set", "n_trials=many"])
    assert "n_trials" in line and "'many'" in line
