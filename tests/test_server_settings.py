"""``ServerSettings``: the server fields of ``HPMConfig`` come from the server's environment,
validated, and a server never takes them from the values a person sends."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpmkd import HPMConfig, HPMKDInputError
from hpmkd.cli import main
from hpmkd.errors import ServerSettingError
from hpmkd.settings import (
    ENV_VARS,
    ServerSettings,
    idle_server_fields_reset,
    refuse_server_fields,
    server_field_names,
)
from hpmkd_app import configform


def settings(tmp_path: Path, **env: str) -> ServerSettings:
    return ServerSettings.from_env({"HPMKD_HOME": str(tmp_path / "home"), **env})


def test_every_server_field_has_an_environment_variable():
    assert set(server_field_names()) == set(ENV_VARS)
    assert set(ServerSettings.from_env({"HPMKD_HOME": "/srv/hpmkd"}).values()) == set(ENV_VARS)


def test_defaults_live_under_the_home(tmp_path):
    s = settings(tmp_path)
    assert s.home == tmp_path / "home"
    assert s.cache_dir == tmp_path / "home" / "cache"
    assert s.memory_dir == tmp_path / "home" / "memory"
    assert s.cache_size_limit_gb == HPMConfig().cache_size_limit_gb
    assert s.max_jobs == HPMConfig().n_jobs
    assert s.dask_scheduler is None
    assert not (tmp_path / "home").exists()  # reading the settings creates nothing


def test_each_variable_is_read(tmp_path):
    s = settings(
        tmp_path,
        HPMKD_CACHE_DIR=str(tmp_path / "c"),
        HPMKD_MEMORY_DIR=str(tmp_path / "m"),
        HPMKD_CACHE_SIZE_LIMIT_GB="0.5",
        HPMKD_MAX_JOBS="4",
        HPMKD_DASK_SCHEDULER="tcp://10.0.0.5:8786",
    )
    assert s.values() == {
        "cache_dir": str(tmp_path / "c"),
        "memory_dir": str(tmp_path / "m"),
        "cache_size_limit_gb": 0.5,
        "n_jobs": 4,
        "dask_scheduler": "tcp://10.0.0.5:8786",
    }
    assert settings(tmp_path, HPMKD_DASK_SCHEDULER="tls://[::1]:8786").dask_scheduler


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("HPMKD_MAX_JOBS", "many", "use a whole number from 1 to 256"),
        ("HPMKD_MAX_JOBS", "0", "use a whole number from 1 to 256"),
        ("HPMKD_MAX_JOBS", "100000", "use a whole number from 1 to 256"),
        ("HPMKD_CACHE_SIZE_LIMIT_GB", "nan", "of at least 0.01"),
        ("HPMKD_CACHE_SIZE_LIMIT_GB", "inf", "of at least 0.01"),
        ("HPMKD_CACHE_SIZE_LIMIT_GB", "1e-12", "of at least 0.01"),
        ("HPMKD_CACHE_DIR", "relative/cache", "is a relative path"),
        ("HPMKD_MEMORY_DIR", "memory", "is a relative path"),
        ("HPMKD_HOME", "home", "is a relative path"),
        ("HPMKD_DASK_SCHEDULER", "localhost:8786", "not a Dask scheduler address"),
        ("HPMKD_DASK_SCHEDULER", "tcp://host:1; rm -rf /", "not a Dask scheduler address"),
        ("HPMKD_DASK_SCHEDULER", "inproc://x", "not a Dask scheduler address"),
    ],
)
def test_invalid_values_name_the_variable(tmp_path, variable, value, words):
    env = {"HPMKD_HOME": str(tmp_path / "home"), variable: value}
    with pytest.raises(ServerSettingError) as info:
        ServerSettings.from_env(env)
    message = str(info.value)
    assert f"{variable}={value!r}" in message and words in message
    # What a server may show anyone: the variable, never the value.
    assert info.value.variable == variable and value not in info.value.public
    assert isinstance(info.value, HPMKDInputError)


def test_a_folder_setting_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "cache"
    file.write_text("x")
    with pytest.raises(HPMKDInputError, match=r"HPMKD_CACHE_DIR=.* is a file, not a folder"):
        settings(tmp_path, HPMKD_CACHE_DIR=str(file))


def test_a_config_takes_the_experiment_from_the_caller_and_the_rest_from_the_server(tmp_path):
    s = settings(tmp_path, HPMKD_MAX_JOBS="3")
    config = s.config({"max_configs": 5, "temperatures": "1,2"})
    assert config.max_configs == 5 and config.temperatures == (1.0, 2.0)
    assert config.n_jobs == 3 and config.cache_dir == str(tmp_path / "home" / "cache")
    for name in server_field_names():
        with pytest.raises(HPMKDInputError, match=f"sets {name}, which belong to the server"):
            s.config({name: getattr(config, name)})


def test_server_fields_a_run_does_not_use_go_back_to_their_defaults(tmp_path):
    s = settings(tmp_path, HPMKD_MAX_JOBS="3", HPMKD_DASK_SCHEDULER="tcp://10.0.0.1:8786",
                 HPMKD_CACHE_SIZE_LIMIT_GB="0.5")
    default = HPMConfig()
    # hpm, memory off, parallel off: the workers, the scheduler and the memory folder
    # change nothing; the cache's folder and size do.
    config = s.config({"use_memory": False, "use_progressive": False, "min_improvement": 0.2})
    idle = idle_server_fields_reset(config, "hpm")
    assert (idle.n_jobs, idle.dask_scheduler, idle.memory_dir) == (
        default.n_jobs, None, default.memory_dir)
    assert idle.cache_dir == config.cache_dir and idle.cache_size_limit_gb == 0.5
    # Experiment fields stay (without effect, they still warn the person who set them).
    assert idle.min_improvement == 0.2 and not idle.use_memory
    assert [name for name, _ in idle.ineffective_fields("hpm")] == ["min_improvement"]
    # With parallel training on, the server's workers and scheduler are kept.
    parallel = idle_server_fields_reset(s.config({"use_parallel": True}), "hpm")
    assert parallel.n_jobs == 3 and parallel.dask_scheduler == "tcp://10.0.0.1:8786"
    # legacy uses none of them.
    legacy = idle_server_fields_reset(s.config({"use_parallel": True}), "legacy")
    assert all(getattr(legacy, n) == getattr(default, n) for n in server_field_names())


def test_refusal_names_every_server_field_and_its_variable():
    with pytest.raises(HPMKDInputError) as info:
        refuse_server_fields({"dask_scheduler": "tcp://x:1", "n_jobs": 9, "max_configs": 2},
                             "the request")
    message = str(info.value)
    assert message.startswith("The request sets n_jobs, dask_scheduler, which belong")
    assert "HPMKD_MAX_JOBS, HPMKD_DASK_SCHEDULER" in message
    refuse_server_fields({"max_configs": 2}, "the request")  # experiment fields pass


def test_the_app_form_applies_given_settings(tmp_path):
    s = settings(tmp_path, HPMKD_MAX_JOBS="1", HPMKD_CACHE_SIZE_LIMIT_GB="0.25")
    config = configform.to_config(configform.default_form(), s)
    assert config.n_jobs == 1 and config.cache_size_limit_gb == 0.25
    assert config.memory_dir == str(tmp_path / "home" / "memory")


def test_a_local_user_still_sets_server_fields_from_the_cli(tmp_path, capsys):
    # On one's own machine the CLI may point at any folder: only the app is a server.
    data = tmp_path / "data.csv"
    data.write_text("a,b,target\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    code = main(["distill", str(data), "--target", "nope",
                 "--set", f"cache_dir={tmp_path / 'c'}", "--set", "n_jobs=3",
                 "--out", str(tmp_path / "out")])
    assert code == 2
    # The settings passed (they are checked before the data); the target is what failed.
    assert "Target column 'nope' is not in the data" in capsys.readouterr().err


def test_web_users_see_their_own_errors_whole_and_the_servers_without_values(caplog):
    import logging

    from hpmkd_app.server_errors import web_message

    log = logging.getLogger("test.server_errors")
    with caplog.at_level("ERROR"):
        own = web_message(HPMKDInputError("Column 'AGE' is missing."), "no run can start", log)
    assert own == "Column 'AGE' is missing." and not caplog.records
    setting = ServerSettingError("Server setting HPMKD_CACHE_DIR='rel/x' is a relative path.",
                                 "HPMKD_CACHE_DIR")
    with caplog.at_level("ERROR"):
        shown = web_message(setting, "no run can start", log, "job 1a2b")
    assert "rel/x" not in shown and "HPMKD_CACHE_DIR is invalid" in shown
    assert "no run can start" in shown and "(job 1a2b)" in shown
    assert "HPMKD_CACHE_DIR='rel/x'" in caplog.text and "job 1a2b" in caplog.text
