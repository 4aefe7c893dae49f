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
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import LinearSVC

from hpmkd import AutoDistiller, DistillationDataset, HPMConfig, HPMKDInputError
from hpmkd.cli import main
from hpmkd.io import read_table_bytes

FEATURES = ["f0", "f1", "f2", "f3", "f4"]


# ----------------------------------------------------------------------------- helpers
def dataset_error(*args, **kwargs) -> str:
    """The message of the HPMKDInputError that DistillationDataset(...) raises."""
    with pytest.raises(HPMKDInputError) as info:
        DistillationDataset(*args, **kwargs)
    message = str(info.value)
    assert "Traceback" not in message
    return message


def cli_error(capsys, tmp_path: Path, argv: list[str], out: Path | str | None = None) -> str:
    """Run the CLI in-process on bad input; check the error contract; return the line."""
    out = Path(tmp_path / "out" if out is None else out)
    before = sorted(p.name for p in tmp_path.iterdir())
    out_before = sorted(p.name for p in out.iterdir()) if out.is_dir() else out.is_file()
    code = main(["distill", *argv, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err and "File \"" not in captured.err
    assert captured.out == ""
    out_after = sorted(p.name for p in out.iterdir()) if out.is_dir() else out.is_file()
    assert out_after == out_before  # --out untouched (absent, the same file, the same folder)
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


# ----------------------------------------------------------------------------- output folder
# Every check below runs before the data is read: the data path given does not even exist,
# and the error is still about the argument, so no case can fail only after a full run.
MISSING = "no-such-data.csv"


def test_out_is_an_existing_file(tmp_path, capsys):
    existing = write(tmp_path / "results.txt", "keep me")
    line = cli_error(capsys, tmp_path, [MISSING, "--target", "target"], out=existing)
    assert "--out" in line and "existing file, not a folder" in line
    assert existing.read_text() == "keep me"


def test_out_under_a_file(tmp_path, capsys):
    existing = write(tmp_path / "results.txt", "keep me")
    line = cli_error(capsys, tmp_path, [MISSING, "--target", "target"],
                     out=existing / "run")
    assert "cannot be created" in line and "results.txt" in line and "is a file" in line


def test_out_in_a_place_that_cannot_be_written(tmp_path, capsys):
    # /proc refuses new folders even to root, so the probe fails on any Linux machine.
    line = cli_error(capsys, tmp_path, [MISSING, "--target", "target"],
                     out="/proc/hpmkd-test/run")
    assert "cannot be written" in line and "'/proc'" in line
    assert "Choose a folder you can write to" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        line = cli_error(capsys, tmp_path, [MISSING, "--target", "target"],
                         out=locked / "run")
    finally:
        locked.chmod(0o700)
    assert "cannot be written" in line and "locked" in line


def test_an_existing_output_folder_is_fine(tmp_path, capsys):
    # The folder exists and is writable: the next problem reported is the missing data.
    (tmp_path / "out").mkdir()
    line = cli_error(capsys, tmp_path, [MISSING, "--target", "target"])
    assert "does not exist" in line and MISSING in line


# ----------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**40)])
def test_seed_out_of_range(tmp_path, capsys, seed):
    line = cli_error(capsys, tmp_path, [MISSING, "--target", "target", "--seed", seed])
    assert f"--seed={seed} is out of range" in line and "from 0 to 4294967295" in line


def test_seed_range_from_python(binary_frame):
    ds = DistillationDataset(binary_frame.assign(p0=0.5, p1=0.5), target="target",
                             teacher_proba_cols=["p0", "p1"])
    assert AutoDistiller(ds, random_state=2**32 - 1).random_state == 2**32 - 1
    for bad in (-1, 2**32, 1.5, True, "42"):
        with pytest.raises(HPMKDInputError, match="random_state="):
            AutoDistiller(ds, random_state=bad)


@pytest.mark.parametrize("size", ["nan", "0", "1", "-0.2", "inf"])
def test_test_size_out_of_range(tmp_path, capsys, size):
    line = cli_error(capsys, tmp_path, [MISSING, "--target", "target", "--test-size", size])
    assert f"--test-size={float(size)} is invalid" in line and "between 0.05 and 0.5" in line


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("temperatures=nan", "HPMConfig.temperatures=(nan,) is invalid"),
        ("temperatures=1,inf", "HPMConfig.temperatures=(1.0, inf) is invalid"),
        ("alphas=nan", "HPMConfig.alphas=(nan,) is invalid"),
        ("cache_size_limit_gb=nan", "HPMConfig.cache_size_limit_gb=nan is invalid"),
        ("cache_size_limit_gb=inf", "HPMConfig.cache_size_limit_gb=inf is invalid"),
        ("cache_size_limit_gb=1e-12", "of at least 0.01"),
        ("time_budget_s=nan", "HPMConfig.time_budget_s=nan is invalid"),
        ("time_budget_s=inf", "HPMConfig.time_budget_s=inf is invalid"),
        ("min_improvement=nan", "HPMConfig.min_improvement=nan is invalid"),
        ("n_jobs=100000", "HPMConfig.n_jobs=100000 is invalid"),
    ],
)
def test_settings_that_are_not_finite_or_in_range(data_csv, tmp_path, capsys, setting, words):
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target",
                                        "--teacher-proba-cols", "p0,p1", "--set", setting])
    assert words in line


# ----------------------------------------------------------------------------- input paths
def test_data_path_is_a_folder(tmp_path, capsys):
    folder = tmp_path / "tables"
    folder.mkdir()
    message = dataset_error(folder, target="target")
    assert "is a folder, not a file" in message and "tables" in message
    line = cli_error(capsys, tmp_path, [str(folder), "--target", "target"])
    assert "Data file" in line and "is a folder, not a file" in line


def test_teacher_and_test_data_paths_that_are_folders(data_csv, tmp_path, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target",
                                        "--teacher", str(folder)])
    assert "Teacher file" in line and "is a folder" in line
    line = cli_error(capsys, tmp_path, [str(data_csv), "--target", "target",
                                        "--test-data", str(folder)])
    assert "Test data file" in line and "is a folder" in line


# ----------------------------------------------------------------------------- data values
def test_infinite_feature_values_are_named(binary_frame, proba_csv, tmp_path, capsys):
    frame = binary_frame.copy()
    frame.loc[[3, 7, 9], "f1"] = np.inf
    frame.loc[[5], "f3"] = -np.inf
    frame.loc[[11], "f0"] = np.nan  # a missing value stays allowed
    message = dataset_error(frame, target="target", teacher_proba_cols=None)
    assert "'f1' (3 rows), 'f3' (1 row)" in message and "in 4 row(s)" in message
    assert "'f0'" not in message and "leave those cells empty" in message
    table = pd.read_csv(proba_csv)
    table.loc[[3, 7], "f2"] = [np.inf, -np.inf]
    table.to_csv(proba_csv, index=False)  # written as inf / -inf text, read back as floats
    line = cli_error(capsys, tmp_path, [str(proba_csv), "--target", "target",
                                        "--teacher-proba-cols", "p0,p1"])
    assert "'f2' (2 rows)" in line and "infinite values" in line


def test_missing_values_are_still_allowed(binary_frame):
    frame = binary_frame.copy()
    frame.loc[:20, "f1"] = np.nan
    ds = DistillationDataset(frame.assign(p0=0.5, p1=0.5), target="target",
                             teacher_proba_cols=["p0", "p1"])
    assert ds.X["f1"].isna().sum() == 21


def test_infinite_values_in_rows_to_predict(binary_frame):
    ds = DistillationDataset(binary_frame, target="target")
    rows = binary_frame.head(3).copy()
    rows.loc[1, "f4"] = -np.inf
    with pytest.raises(HPMKDInputError, match=r"'f4' \(1 row\) in the rows to predict"):
        ds.prepare(rows)


def _many_classes(n_classes: int = 50, per_class: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(n_classes * per_class, 3)), columns=["a", "b", "c"])
    frame["target"] = np.repeat(np.arange(n_classes), per_class)
    return frame


def test_fifty_classes_of_five_rows(tmp_path, capsys, fit_counter):
    frame = _many_classes()
    proba = np.full((len(frame), 50), 1 / 50)
    cols = [f"p{i}" for i in range(50)]
    table = pd.concat([frame, pd.DataFrame(proba, columns=cols)], axis=1)
    ds = DistillationDataset(table, target="target", teacher_proba_cols=cols)
    with pytest.raises(HPMKDInputError) as info:
        AutoDistiller(ds, method="legacy")  # refused before run(): nothing trains
    message = str(info.value)
    assert "the target 'target' has 50 classes" in message
    assert "validation part would hold only 40 rows" in message
    assert "Smallest classes: 0 (5 rows), 1 (5 rows)" in message
    assert "merge rare classes" in message
    assert fit_counter == []
    path = tmp_path / "classes.csv"
    table.to_csv(path, index=False)
    line = cli_error(capsys, tmp_path, [str(path), "--target", "target",
                                        "--teacher-proba-cols", ",".join(cols)])
    assert "Too few rows per class to split" in line and "50 classes" in line
    assert fit_counter == []


def test_too_many_classes_for_the_test_part_is_refused_when_the_dataset_is_made():
    frame = _many_classes(n_classes=30, per_class=5)  # 150 rows: a 5% test part holds 8
    message = dataset_error(frame, target="target", test_size=0.05)
    assert "the test part would hold only 8 rows" in message


# ----------------------------------------------------------------------------- columns
def _wide_header(n_columns: int, duplicate: str) -> bytes:
    names = [f"column_{i:05d}" for i in range(n_columns)] + [duplicate, "target"]
    header = ",".join(names)
    assert len(header) > 64 * 1024  # longer than the sample the delimiter is sniffed from
    rows = "\n".join(",".join(["1"] * (n_columns + 1) + [str(i % 2)]) for i in range(20))
    return (header + "\n" + rows + "\n").encode()


def test_duplicate_column_beyond_the_header_buffer(tmp_path, capsys):
    content = _wide_header(6000, duplicate="column_00002")
    path = write(tmp_path / "wide.csv", content)
    message = dataset_error(path, target="target")
    assert "duplicate column name(s): 'column_00002'" in message
    with pytest.raises(HPMKDInputError, match="'column_00002'"):
        read_table_bytes(content, "wide.csv")
    line = cli_error(capsys, tmp_path, [str(path), "--target", "target",
                                        "--teacher-proba-cols", "p0,p1"])
    assert "duplicate column name(s): 'column_00002'" in line


def test_wide_header_without_duplicates_reads(tmp_path):
    path = write(tmp_path / "wide.csv", _wide_header(6000, duplicate="column_extra"))
    ds = DistillationDataset(path, target="target")
    assert ds.n_features == 6001 and "column_extra" in ds.features


# ----------------------------------------------------------------------------- teacher labels
@pytest.mark.parametrize(
    ("teacher_labels", "target_labels"),
    [
        ((0.0, 1.0), (0, 1)),          # fitted on floats, target read as integers
        ((0, 1), (0.0, 1.0)),
        (("0", "1"), (0, 1)),          # text that reads as the same numbers
        (("yes", "no"), ("yes", "no")),
        ((2, 10), (2, 10)),            # sorted as numbers, not as text ("10" < "2")
    ],
    ids=["float-teacher", "float-target", "text-numbers", "text", "numeric-order"],
)
def test_teacher_labels_match_by_value(binary_frame, teacher_labels, target_labels):
    X = binary_frame[FEATURES]
    y = binary_frame["target"].to_numpy()
    teacher = LogisticRegression().fit(X, np.where(y == 1, teacher_labels[1], teacher_labels[0]))
    frame = binary_frame.assign(
        target=np.where(y == 1, target_labels[1], target_labels[0]).tolist())
    ds = DistillationDataset(frame, target="target", teacher=teacher)
    # Columns follow the dataset's classes: the one for the label of y == 1 is the
    # teacher's column for its label of y == 1, whatever the type of the label.
    k_target = ds.classes.index(target_labels[1])
    k_teacher = [str(c) for c in teacher.classes_].index(str(teacher_labels[1]))
    assert np.allclose(ds.teacher_proba()[:, k_target], teacher.predict_proba(X)[:, k_teacher])


@pytest.mark.parametrize(
    ("teacher_labels", "target_labels", "shown"),
    [
        (("no", "yes"), (0, 1), "[no, yes]"),
        ((0.0, 2.0), (0, 1), "[0.0, 2.0]"),
        (("1.0", "2.0"), ("1", "2"), "[1.0, 2.0]"),  # text on both sides: exact text
        ((False, True), (0, 1), "[False, True]"),    # a boolean is not the number 0/1
    ],
    ids=["words-vs-numbers", "other-numbers", "other-text", "booleans-vs-numbers"],
)
def test_teacher_labels_that_differ_are_refused(binary_frame, teacher_labels, target_labels,
                                                shown):
    X = binary_frame[FEATURES]
    y = binary_frame["target"].to_numpy()
    labels = np.array(teacher_labels, dtype=object)[y]
    teacher = LogisticRegression().fit(X, labels.astype(type(teacher_labels[0])))
    frame = binary_frame.assign(
        target=np.array(target_labels, dtype=object)[y].tolist())
    message = dataset_error(frame, target="target", teacher=teacher)
    assert f"was trained on classes {shown}" in message


def test_float_labelled_teacher_file_runs_from_the_cli(binary_frame, data_csv, tmp_path, capsys):
    path = tmp_path / "teacher.joblib"
    joblib.dump(LogisticRegression().fit(binary_frame[FEATURES],
                                         binary_frame["target"].astype(float)), path)
    out = tmp_path / "run"
    code = main(["distill", str(data_csv), "--target", "target", "--teacher", str(path),
                 "--method", "legacy", "--set", "families=tree", "--set", "temperatures=2",
                 "--set", "alphas=0.5", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        "best_model.joblib", "results.csv", "summary.json", "timings.csv"]
