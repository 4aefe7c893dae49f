"""The command line starts without the heavy libraries, and an identical rerun is served
from the run cache with the outputs a cold run writes (and trains nothing)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

#: Imported only when a run needs them; ``hpmkd --help`` must not pay for them.
HEAVY = ("sklearn", "lightgbm", "pandas", "scipy", "joblib", "diskcache", "plotly")

_LOADED = """
import sys
{action}
heavy = {heavy!r}
print("loaded:" + ",".join(m for m in heavy if m in sys.modules))
"""


def _loaded_after(action: str) -> list[str]:
    code = _LOADED.format(action=action, heavy=HEAVY)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The last line is ours (help text comes before it).
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("loaded:"), done.stdout[-2000:]
    return [m for m in last.removeprefix("loaded:").split(",") if m]


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _loaded_after("import hpmkd.cli") == []


def test_help_loads_no_heavy_library() -> None:
    action = (
        "from hpmkd.cli import main\n"
        "for argv in (['--help'], ['distill', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, exc.code\n"
    )
    assert _loaded_after(action) == []


def test_the_check_sees_a_heavy_import() -> None:
    # The checks above must be able to fail: touching a lazy public name loads the engine.
    assert {"sklearn", "pandas"} <= set(_loaded_after("import hpmkd\nhpmkd.AutoDistiller"))


def test_lazy_public_names_are_the_real_ones() -> None:
    import hpmkd
    from hpmkd.distiller import AutoDistiller

    assert hpmkd.AutoDistiller is AutoDistiller
    assert set(hpmkd.__all__) <= set(dir(hpmkd))
    for name in hpmkd.__all__:
        assert getattr(hpmkd, name) is not None
