"""The report's leakage section (and the banner the summary shows when leakage is
suspected): what :mod:`hpmkd.leakage` measured, why it matters and what to do."""

from __future__ import annotations

import math

from hpmkd.leakage import LeakageCheck, LeakageSignal
from hpmkd.report.context import ReportContext
from hpmkd.report.fmt import esc, table

#: The numbers shown per signal, with their labels and formats.
_SHOWN = {
    "in_sample_fit": (
        ("teacher_log_loss", "teacher log-loss", "{:.3f}"),
        ("reference_log_loss", "reference log-loss (out-of-fold)", "{:.3f}"),
        ("gain", "relative gain", "{:+.1%}"),
        ("gain_low", "gain, 95% lower end", "{:+.1%}"),
        ("calibration_slope", "calibration slope", "{:.2f}"),
        ("calibration_slope_low", "slope, 95% lower end", "{:.2f}"),
        ("teacher_ks", "teacher KS", "{:.3f}"),
        ("reference_ks", "reference KS", "{:.3f}"),
        ("teacher_one_hot_share", "teacher near one-hot rows", "{:.0%}"),
        ("rows", "rows", "{:,.0f}"),
    ),
    "validation_above_test": (
        ("validation_log_loss", "validation log-loss", "{:.3f}"),
        ("test_log_loss", "test log-loss", "{:.3f}"),
        ("gain", "relative gain", "{:+.1%}"),
        ("gain_low", "gain, 95% lower end", "{:+.1%}"),
        ("validation_ks", "validation KS", "{:.3f}"),
        ("test_ks", "test KS", "{:.3f}"),
    ),
}


def leakage_banner(ctx: ReportContext) -> str:
    """A warning at the top of the summary when leakage is suspected, else nothing.

    Parameters
    ----------
    ctx : ReportContext

    Returns
    -------
    str
        HTML.
    """
    check = ctx.result.leakage
    if check is None or not check.suspected:
        return ""
    names = ", ".join(sorted({s.teacher for s in check.fired}))
    refit = (
        " This run used teacher_refit=&quot;oof&quot;: the soft targets and the teacher's "
        "scores below come from cross-fitted clones."
        if check.teacher_refit == "oof"
        else " The teacher's scores below are optimistic and its soft targets sit close to "
        "the labels."
    )
    return (
        "<p class='warn' id='leakage-banner'><strong>Leakage suspected:</strong> the teacher "
        f"{esc(names)} looks trained on the rows this run used.{refit} "
        "<a href='#sec-leakage'>What was seen and what to do</a>.</p>"
    )


def section_leakage(ctx: ReportContext) -> str:
    """The leakage check: its finding in words and every signal's numbers.

    Parameters
    ----------
    ctx : ReportContext

    Returns
    -------
    str
        HTML.
    """
    check: LeakageCheck | None = ctx.result.leakage
    if check is None:
        return "<p>No leakage check was made in this run.</p>"
    verdict = (
        "<p class='warn'><strong>Leakage suspected.</strong></p>"
        if check.suspected
        else "<p><strong>No sign of leakage.</strong></p>"
    )
    paragraphs = "".join(f"<p>{esc(p)}</p>" for p in check.text.split("\n\n"))
    rows = [_row(s) for s in check.signals]
    signals = (
        table(["teacher", "signal", "fired", "numbers", "what was measured"], rows)
        if rows
        else ""
    )
    return (
        verdict
        + paragraphs
        + signals
        + f"<p>teacher_refit: <code>{esc(check.teacher_refit)}</code>; the check took "
        f"{check.seconds:.1f} s.</p>"
    )


def _row(signal: LeakageSignal) -> list[str]:
    shown = []
    for key, label, form in _SHOWN.get(signal.name, ()):
        value = signal.values.get(key)
        if value is None or not math.isfinite(value):
            continue
        shown.append(f"{esc(label)} {esc(form.format(value))}")
    return [
        esc(signal.teacher),
        f"<code>{esc(signal.name)}</code>",
        f"<span data-leakage-fired='{str(signal.fired).lower()}'>"
        f"{'yes' if signal.fired else 'no'}</span>",
        "<br>".join(shown),
        esc(signal.measured),
    ]
