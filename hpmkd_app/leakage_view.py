"""The leakage notice: does the teacher look fitted on the rows hpmkd uses, and what to do.

The engine measures it (:mod:`hpmkd.leakage`: before a run on the Data page with
:func:`~hpmkd.leakage.check_dataset`, within a run as ``RunResult.leakage``); this module
turns a :class:`~hpmkd.leakage.LeakageCheck` into what a person reads in the app: what
hpmkd saw, why it matters, and the remedies *in this app* (the test table upload on the
Data page, the ``Teacher refit`` field on the Configure page), leaving out a remedy the
inputs already apply. :func:`build_notice` is plain data (tested without Streamlit);
:func:`render` draws it inside a keyed container (``st-key-leakage_<where>``), so
browser tests find it on every page.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from hpmkd.leakage import WHY, LeakageCheck

#: The first words of the notice, suspected or not (browser tests wait for them).
HEADLINE = "Leakage check"
SUSPECTED = (f"{HEADLINE}: the teacher looks fitted on the rows hpmkd uses — leakage "
             "suspected.")
QUIET = f"{HEADLINE}: no sign that the teacher saw these rows."
EXPECTED = (f"{HEADLINE}: the reference teacher fits its own training rows closely, as "
            "expected; its validation and test rows are unseen.")
#: Label of the button that applies remedy B on the Data page.
REFIT_BUTTON = "Use cross-fitted soft targets (Teacher refit: oof)"
#: Values of each signal shown in the details table, in this order, when present.
_DETAIL_VALUES = (
    "teacher_log_loss", "reference_log_loss", "validation_log_loss", "test_log_loss",
    "gain", "gain_low", "gain_high", "margin", "teacher_ks", "reference_ks",
    "validation_ks", "test_ks", "teacher_one_hot_share", "reference_one_hot_share",
    "rows", "validation_rows", "test_rows",
)


@dataclass(frozen=True)
class LeakageNotice:
    """What the app says about one leakage check (plain data).

    Attributes
    ----------
    suspected : bool
        A signal fired on a teacher that may have seen validation or test rows.
    level : {"warning", "info", "ok"}
        ``info``: only teachers the app trained on the run's train rows fired (they
        saw those rows by design).
    headline : str
    seen : tuple of str
        What hpmkd saw: the fired signals (suspected) or every signal (quiet).
    why : str
        Why it matters (empty when nothing was suspected).
    remedies : tuple of str
        What to do in the app, leaving out what the inputs already do.
    details : DataFrame
        One row per signal: teacher, signal, fired, what was measured, its numbers.
    offer_refit : bool
        Whether switching ``teacher_refit`` to ``"oof"`` is still a remedy.
    """

    suspected: bool
    level: str
    headline: str
    seen: tuple[str, ...]
    why: str
    remedies: tuple[str, ...]
    details: pd.DataFrame
    offer_refit: bool


def build_notice(
    check: LeakageCheck,
    test_table_used: bool,
    refit_possible: bool = True,
    trained_here: Collection[str] = (),
    teacher_refit: str | None = None,
) -> LeakageNotice:
    """The notice of ``check`` for inputs with or without a separate test table.

    Parameters
    ----------
    check : LeakageCheck
        From :func:`hpmkd.leakage.check_dataset` or ``RunResult.leakage``; its
        ``teacher_refit`` says whether remedy B is already applied.
    test_table_used : bool
        The test rows come from a separate test table (remedy A is already applied).
    refit_possible : bool, default True
        At least one teacher is a model (probability columns cannot be refitted).
    trained_here : collection of str
        Teachers the app trained on exactly the run's train rows (the reference
        teacher): they fit those rows by design and never saw the validation and test
        rows, so their signal is expected, not a suspicion.
    teacher_refit : str, optional
        The setting to judge remedy B by, when it is not the check's own (before a run,
        the Configure form's value).

    Returns
    -------
    LeakageNotice
    """
    details = pd.DataFrame([
        {"teacher": s.teacher, "signal": s.name, "fired": bool(s.fired),
         **{k: s.values[k] for k in _DETAIL_VALUES if k in s.values},
         "measured": s.measured}
        for s in check.signals
    ])
    refit_applied = (teacher_refit or check.teacher_refit) == "oof"
    if not check.suspected:
        seen = tuple(s.text for s in check.signals) or (check.text,)
        return LeakageNotice(False, "ok", QUIET, seen, "", (), details, False)
    refit = _refit_remedy(refit_possible, refit_applied)
    fired = check.fired
    if all(s.teacher in trained_here and s.name == "in_sample_fit" for s in fired):
        return LeakageNotice(
            False, "info", EXPECTED, tuple(s.text for s in fired),
            "hpmkd trained it on this run's train rows only, so its validation and test "
            "scores are honest; on the train rows its probabilities sit close to the labels, "
            "so there its soft targets teach the student little beyond the labels.",
            (refit,), details, refit_possible and not refit_applied,
        )
    remedies = []
    if test_table_used:
        remedies.append(
            "Your separate **test table** is in use: the final teacher-vs-student figures "
            "are measured on its rows. The training and validation rows are still rows the "
            "teacher saw."
        )
    else:
        remedies.append(
            "**Upload a separate test table** that the teacher never saw (Data & teachers "
            "page, *Test rows*): the teacher-vs-student comparison is then on rows nobody "
            "trained on."
        )
    remedies.append(refit)
    why = WHY.removeprefix("Why it matters: ")
    return LeakageNotice(
        True, "warning", SUSPECTED, tuple(s.text for s in fired), why[:1].upper() + why[1:],
        tuple(remedies), details, refit_possible and not refit_applied,
    )


def _refit_remedy(refit_possible: bool, refit_applied: bool) -> str:
    """Remedy B (cross-fitted soft targets) as it stands for these teachers and config."""
    if not refit_possible:
        return (
            "Cross-fitted soft targets (**Teacher refit: oof**) need the teacher model: "
            "probability columns cannot be refitted. Upload the model file instead, or "
            "give probability columns that come from out-of-fold predictions."
        )
    if refit_applied:
        return (
            "**Teacher refit: oof** is set: the soft targets and the teacher's reported "
            "scores come from cross-fitted clones of the teacher, not from the teacher as "
            "given."
        )
    return (
        "Set **Teacher refit** to **oof** (Configure page, *Teacher*): hpmkd refits clones of the "
        "teacher (a scikit-learn estimator or Pipeline, also from a file) on K-1 folds of "
        "the training rows, so students learn from out-of-fold, honest soft targets and "
        "the teacher's own scores come only from rows its clones did not train on."
    )


def render(
    check: LeakageCheck | None,
    test_table_used: bool,
    where: str,
    on_refit: Callable[[], None] | None = None,
    refit_possible: bool = True,
    trained_here: Collection[str] = (),
    teacher_refit: str | None = None,
) -> None:
    """Draw the notice of ``check`` (nothing when there is no check).

    Parameters
    ----------
    check : LeakageCheck or None
    test_table_used : bool
        See :func:`build_notice`.
    where : str
        The page, for the container key ``leakage_<where>``.
    on_refit : callable, optional
        Applies remedy B (the Data page sets the config form's ``teacher_refit``);
        without it the notice points to the Configure page only.
    refit_possible, trained_here, teacher_refit
        See :func:`build_notice`.
    """
    if check is None:
        return
    notice = build_notice(check, test_table_used, refit_possible, trained_here, teacher_refit)
    with st.container(key=f"leakage_{where}"):
        if notice.level in ("warning", "info"):
            body = (
                f"**{notice.headline}**\n\n**What hpmkd saw.** " + " ".join(notice.seen)
                + f"\n\n**Why it matters.** {notice.why}\n\n**What to do.**\n"
                + "".join(f"\n- {r}" for r in notice.remedies)
            )
            if notice.level == "warning":
                st.warning(body, icon=":material/warning:")
            else:
                st.info(body, icon=":material/info:")
            if notice.offer_refit and on_refit is not None:
                st.button(REFIT_BUTTON, key=f"leakage_refit_{where}", on_click=on_refit,
                          icon=":material/sync_alt:")
        else:
            st.caption(f"✓ **{notice.headline}** " + " ".join(notice.seen))
        if not notice.details.empty:
            with st.expander("Leakage check details"):
                st.dataframe(notice.details, hide_index=True, width="stretch")
                if check.n_rows:
                    st.caption(f"{check.n_rows:,} rows checked in {check.seconds:.1f} s.")
