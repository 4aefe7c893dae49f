"""The report's dataset section (profile, class balance, missing values, feature types) and
configuration section (``HPMConfig``, random state, versions)."""

from __future__ import annotations

from hpmkd.report.context import ReportContext
from hpmkd.report.fmt import esc, fmt, kv_table, plain, table
from hpmkd.results_table import to_jsonable
from hpmkd.settings import server_field_names


def section_dataset(ctx: ReportContext) -> str:
    """The dataset's profile as recorded by the run (no rows).

    Parameters
    ----------
    ctx : ReportContext

    Returns
    -------
    str
        HTML.
    """
    # The profile is the dataset's own plain-data description (DatasetFacts.profile).
    p = ctx.result.dataset.profile
    rows_total = max(int(p.get("rows", 0)), 1)
    numeric = list(p.get("numeric_features") or [])
    categorical = list(p.get("categorical_features") or [])
    info = kv_table(
        [
            ("name", esc(p.get("name", ""))),
            ("target column", esc(p.get("target", ""))),
            (
                "rows",
                f"<span data-metric='rows' data-value='{p.get('rows')}'>"
                f"{fmt(p.get('rows'), 'int')}</span>",
            ),
            (
                "feature columns",
                f"<span data-metric='features' data-value='"
                f"{p.get('features')}'>{fmt(p.get('features'), 'int')}</span>"
                f" ({len(numeric):,} numeric, {len(categorical):,} categorical)",
            ),
            ("rows dropped for a missing target", fmt(p.get("dropped_missing_target"), "int")),
            ("teachers", esc(", ".join(map(str, p.get("teachers") or [])) or "none")),
        ],
        "dataset-profile",
    )
    classes = p.get("class_counts") or {}
    balance = table(
        ["class", "rows", "share"],
        [[esc(c), fmt(n, "int"), f"{int(n) / rows_total:.1%}"] for c, n in classes.items()],
    )
    missing = p.get("missing_by_feature") or {}
    missing_html = (
        table(
            ["feature", "missing values", "share of rows"],
            [[esc(c), fmt(n, "int"), f"{int(n) / rows_total:.1%}"] for c, n in missing.items()],
        )
        if missing
        else "<p>No feature has missing values.</p>"
    )
    features = (
        f"<details><summary>Numeric features ({len(numeric):,})</summary><p>"
        + ", ".join(esc(c) for c in numeric)
        + f"</p></details><details><summary>Categorical features ({len(categorical):,})"
        "</summary><p>" + (", ".join(esc(c) for c in categorical) or "none") + "</p></details>"
    )
    return (
        info
        + "<h3>Class balance</h3>"
        + balance
        + "<h3>Missing values</h3>"
        + missing_html
        + "<h3>Feature types</h3>"
        + features
    )


def section_configuration(ctx: ReportContext, plotly_js_version: str) -> str:
    """The run's ``HPMConfig``, random state and library versions.

    Parameters
    ----------
    ctx : ReportContext
    plotly_js_version : str
        The version of the plotly.js bundle inlined in the page.

    Returns
    -------
    str
        HTML.
    """
    import plotly

    r = ctx.result
    config = to_jsonable(r.shown_config())
    rows = [(esc(k), plain(v, "general")) for k, v in config.items()]
    if r.server_details_hidden:
        rows.append(("set by the server (not shown)", esc(", ".join(server_field_names()))))
    cfg = kv_table(rows, "config-table")
    versions = dict(r.versions)
    versions["plotly (report)"] = plotly.__version__
    versions["plotly.js (inlined)"] = plotly_js_version
    ver = kv_table([(esc(k), esc(v)) for k, v in versions.items()], "versions-table")
    seed = f"<p>Random state: {esc(r.random_state)}.</p>"
    return "<h3>HPMConfig</h3>" + cfg + seed + "<h3>Versions</h3>" + ver
