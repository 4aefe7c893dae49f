"""The selection rule: which trained candidate becomes the student.

``best``: the highest validation score (ties: the smaller model).

``smaller_if_noninferior`` (default): the highest validation score, unless a candidate at
least ``min_saving`` times smaller is *non-inferior* to it: the one-sided upper
confidence bound of (top score - candidate score) on the validation rows is below
``margin``. The bound is the paired difference plus z times its bootstrap standard error
(``N_BOOT`` paired resamples of the validation rows, normal approximation), at level
``LEVEL / m`` for the m candidates that offer the saving (Bonferroni), so the chance that
any inferior candidate is declared non-inferior stays below ``LEVEL``. Among the
non-inferior candidates the one with the largest saving wins (ties: the higher validation
score). A candidate trained on a subsample (a successive-halving rung) never competes
with the same configuration trained on all rows: its only saving would be the rows.
A candidate the capacity climb superseded by its seed average (``extra["superseded_by"]``,
see :mod:`hpmkd.engine.climb`) does not compete: its configuration is represented by the
average, of which it is one member (or, for the climb's start when the runner-up's
configuration went on, its configuration's average lost to that one on validation).

Single fits must clearly beat the seed average (``smaller_if_noninferior`` only; ``best``
stays the plain arg-max): when the candidates include a seed average (a student whose
``params["n_members"]`` > 1, :func:`hpmkd.students.fit_seed_average`), a single fit of the
same family scored at or above the best such average on validation competes only when it is
*clearly* better: the average scores below it in at least ``CLEARLY_ABOVE`` (90%) of
``AVERAGE_BOOT`` paired bootstrap resamples of the validation rows (the racing rule).
Otherwise it is set aside (``SelectionDecision.set_aside`` has its score and share) and
does not compete, provided the average is then the top competing candidate: the set-aside
only ever hands the choice to the average. When another candidate (of another family)
outranks the average on validation, nothing is set aside and the reason says so.
Why: the single's validation score is the largest of some twenty noisy
estimates, biased upwards, while the average's is one fresh estimate of a model with less
variance; on case b seed 2 (clean protocol) a single at validation KS 0.9663 outranked the
average at 0.9650 (the average below it in fewer than half the resamples), yet out of
fold on all 8,000 of the engine's rows the single scored 0.0130 below the teacher and the
average 0.0013 above it (docs/HPM.md, "Seed averages").

The decision record carries the numbers: margin, level, m, and for each candidate checked
its saving, score difference and upper bound. The reason says them too: when the top
candidate is kept, it names the closest of the smaller candidates (the lowest upper bound,
or the smallest difference where none was computed) with its saving, its validation loss
and the bound of that loss; when no candidate offers the saving, the largest saving there
is. When candidates were left out of the competition (set aside for a seed average,
superseded), "highest validation" reads "among the competing candidates": a left-out
single fit may score higher on validation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from hpmkd.components.racing import PairedBootstrap
from hpmkd.evaluate import CandidateResult
from hpmkd.students import N_MEMBERS

SELECTION_RULES = ("smaller_if_noninferior", "best")
#: Family-wise one-sided error level of the non-inferiority checks.
LEVEL = 0.05
#: Paired bootstrap resamples behind each standard error.
N_BOOT = 400
#: Share of paired bootstrap resamples of the validation rows in which a seed average
#: must score below a single fit of its family for the single to compete with it (the
#: racing rule's threshold).
CLEARLY_ABOVE = 0.9
#: Resamples behind the comparison of single fits with the seed average.
AVERAGE_BOOT = 200


@dataclass(frozen=True)
class SelectionDecision:
    """Which candidate was selected under the rule, and why, with the numbers.

    ``checked`` lists each candidate that offered the saving: ``name``, ``saving``,
    ``difference`` (top minus it, validation), ``upper_bound`` (``None`` when the point
    difference already missed the margin) and ``noninferior``.
    """

    rule: str
    top_by_validation: str
    selected: str
    reason: str
    checked: tuple[Mapping[str, object], ...] = ()
    margin: float | None = None
    min_saving: float | None = None
    level: float | None = None
    n_compared: int = 0
    set_aside: tuple[Mapping[str, object], ...] = ()

    def to_dict(self) -> dict[str, object]:
        """Plain data."""
        return dataclasses.asdict(self)


#: Key of ``CandidateResult.extra`` naming the seed average that supersedes a candidate.
SUPERSEDED_BY = "superseded_by"


def score_of(result: CandidateResult, metric: str) -> float:
    """The validation score (``-inf`` when undefined, so it never wins)."""
    value = result.val.get(metric, math.nan)
    return -math.inf if value is None or math.isnan(value) else float(value)


def rank_key(result: CandidateResult, metric: str) -> tuple[float, float]:
    """Higher is better: the validation score, then the smaller model."""
    return (score_of(result, metric), -float(result.size_bytes))


def saving(top: CandidateResult, other: CandidateResult) -> float:
    """How many times smaller (pickled bytes) ``other`` is than ``top``.

    Size, not latency: a latency measured on a busy machine varies several-fold between
    identical models, which would make the same seed pick different students.
    """
    if top.size_bytes > 0 and other.size_bytes > 0:
        return top.size_bytes / other.size_bytes
    return 1.0


def select_student(
    candidates: Sequence[CandidateResult],
    y_val: np.ndarray,
    reference_val: np.ndarray | None,
    metric: str,
    rule: str,
    min_saving: float,
    margin: float,
    seed: int,
) -> tuple[CandidateResult, SelectionDecision]:
    """The selected candidate and the record of the decision (see the module docstring).

    Parameters
    ----------
    candidates : sequence of CandidateResult
        Trained candidates with validation probabilities, sizes and latencies.
    y_val : array of int
        Class indices of the validation rows.
    reference_val : array, optional
        Teacher probabilities on the validation rows (agreement metrics).
    metric : str
        The selection metric (higher is better).
    rule : {"smaller_if_noninferior", "best"}
    min_saving : float
        Smallest size or latency ratio worth giving up the top candidate for.
    margin : float
        Non-inferiority margin, in units of ``metric``.
    seed : int
        Seed of the bootstrap resamples.
    """
    # Candidates that do not compete are left out in one filter, before the rule runs once.
    superseded = [c for c in candidates if c.extra.get(SUPERSEDED_BY)]
    pool = [c for c in candidates if not c.extra.get(SUPERSEDED_BY)] or list(candidates)
    if len(pool) == len(candidates):
        superseded = []
    aside = (
        [] if rule == "best"
        else singles_not_clearly_above_average(pool, y_val, reference_val, metric, seed)
    )
    names = {entry["name"] for entry in aside}
    note = ""
    if aside:
        # The set-aside hands the choice to the seed average, which stands for its
        # family's single fits; when another candidate outranks the average on validation
        # it would hand the choice to that one instead, below the singles it set aside
        # (seen on validation: a logistic regression shipped over MLP singles 0.006-0.011
        # higher, 0.02-0.03 lower on outer validation rows). Then the singles compete.
        rest = [c for c in pool if c.name not in names]
        top = max(rest, key=lambda c: rank_key(c, metric))
        if top.name != aside[0]["average"]:
            note = (
                f"; no single fit set aside: the seed average {aside[0]['average']} "
                f"(validation {metric} {aside[0]['average_val']:.4f}) is below {top.name} "
                f"({score_of(top, metric):.4f}), so its family's single fits compete"
            )
            aside, names = [], set()
    selected, decision = _apply_rule(
        [c for c in pool if c.name not in names],
        y_val, reference_val, metric, rule, min_saving, margin, seed,
        competing=bool(aside or superseded),
    )
    if aside:
        head = aside[0]
        note += (
            f"; set aside, single fits not clearly above the seed average "
            f"{head['average']} (validation {metric} {head['average_val']:.4f}): "
            + ", ".join(
                f"{e['name']} {e['val']:.4f} (the average below it in "
                f"{e['share_average_below']:.0%} of {AVERAGE_BOOT} paired resamples, "
                f"under {CLEARLY_ABOVE:.0%})"
                for e in aside
            )
        )
    if superseded:
        note += (
            "; not competing, superseded by a seed average: "
            + ", ".join(c.name for c in superseded)
        )
    if not note:
        return selected, decision
    return selected, dataclasses.replace(
        decision, reason=decision.reason + note, set_aside=tuple(aside)
    )


def _apply_rule(
    candidates: Sequence[CandidateResult],
    y_val: np.ndarray,
    reference_val: np.ndarray | None,
    metric: str,
    rule: str,
    min_saving: float,
    margin: float,
    seed: int,
    competing: bool = False,
) -> tuple[CandidateResult, SelectionDecision]:
    """The rule itself on the competing candidates (parameters of :func:`select_student`;
    ``competing``: some candidates were left out, which the reason says)."""
    among = " among the competing candidates" if competing else ""
    full_rows = max(c.train_rows for c in candidates)
    on_all_rows = {c.spec.key() for c in candidates if c.spec and c.train_rows == full_rows}

    def shadowed(c: CandidateResult) -> bool:
        # The same configuration also trained on all rows: its only saving is the rows.
        return c.train_rows < full_rows and c.spec is not None and c.spec.key() in on_all_rows

    top = max(candidates, key=lambda c: (score_of(c, metric), not shadowed(c), -c.size_bytes))
    top_score = score_of(top, metric)
    if rule == "best" or not math.isfinite(top_score):
        return top, SelectionDecision(
            rule=rule,
            top_by_validation=top.name,
            selected=top.name,
            reason=f"highest validation {metric}{among} ({top_score:.4f})",
        )
    eligible = [
        c for c in candidates if c is not top and saving(top, c) >= min_saving and not shadowed(c)
    ]
    eligible.sort(key=lambda c: (-saving(top, c), -score_of(c, metric)))
    m = len(eligible)
    z = NormalDist().inv_cdf(1 - LEVEL / m) if m else math.nan
    # Every candidate whose point estimate is within the margin is compared with the top
    # on the same resamples; all of them are scored in one pass over the resamples.
    close = [c for c in eligible if not top_score - score_of(c, metric) >= margin]
    resampled: dict[int, np.ndarray] = {}
    top_resampled = None
    if close:
        bootstrap = PairedBootstrap(y_val, None, metric, reference_val, n_boot=N_BOOT, seed=seed)
        top_resampled, *others = bootstrap.scores_many(
            [top.val_proba, *(c.val_proba for c in close)]
        )
        resampled = {id(c): scores for c, scores in zip(close, others, strict=True)}
    checked, passed = [], []
    for c in eligible:
        diff = top_score - score_of(c, metric)
        entry = {"name": c.name, "saving": saving(top, c), "difference": diff}
        if diff >= margin:
            # The point estimate already misses the margin: no bound can be below it.
            entry.update(upper_bound=None, noninferior=False)
        else:
            a, b = top_resampled, resampled[id(c)]
            valid = ~(np.isnan(a) | np.isnan(b))  # resamples where both are defined
            spread = a[valid] - b[valid]
            upper = diff + z * float(np.std(spread, ddof=1))
            entry.update(upper_bound=upper, noninferior=upper < margin)
            if upper < margin:
                passed.append(c)
        checked.append(entry)
    record = {
        "rule": rule,
        "top_by_validation": top.name,
        "checked": tuple(checked),
        "margin": margin,
        "min_saving": min_saving,
        "level": LEVEL,
        "n_compared": m,
    }
    if not passed:
        if not m:
            others = [c for c in candidates if c is not top and not shadowed(c)]
            smallest = max(others, key=lambda c: saving(top, c), default=None)
            why = f"no candidate is {min_saving:g}x smaller" + (
                f" (the smallest, {smallest.name}, is {saving(top, smallest):.1f}x smaller)"
                if smallest is not None else " (no other candidate)"
            )
        else:
            why = (
                f"none of the {m} candidate(s) at least {min_saving:g}x smaller is "
                f"non-inferior within {margin:g} {metric}; {_closest(checked, metric, m)}"
            )
        reason = f"highest validation {metric}{among} ({top_score:.4f}); {why}"
        return top, SelectionDecision(selected=top.name, reason=reason, **record)
    chosen = passed[0]
    entry = next(e for e in checked if e["name"] == chosen.name)
    top_words = "top competing validation candidate" if competing else "top validation candidate"
    reason = (
        f"{entry['saving']:.1f}x smaller than the {top_words} "
        f"{top.name} and non-inferior to it: validation {metric} {score_of(chosen, metric):.4f}"
        f" vs {top_score:.4f}, one-sided upper bound of the difference "
        f"{entry['upper_bound']:.4f} < margin {margin:g} (level {LEVEL:g}, Bonferroni over "
        f"{m} candidate(s) at least {min_saving:g}x smaller)"
    )
    return chosen, SelectionDecision(selected=chosen.name, reason=reason, **record)


def _closest(checked: Sequence[Mapping[str, object]], metric: str, m: int) -> str:
    """The smaller candidate that came closest to non-inferiority, with its numbers:
    the lowest upper bound, or, where no bound was computed (every point difference
    already missed the margin), the smallest difference."""
    bounded = [e for e in checked if e["upper_bound"] is not None]
    if bounded:
        e = min(bounded, key=lambda e: (e["upper_bound"], e["difference"]))
        return (
            f"closest: {e['name']}, {e['saving']:.1f}x smaller, validation {metric} "
            f"{e['difference']:.4f} below, up to {e['upper_bound']:.4f} below at the "
            f"one-sided {1 - LEVEL:.0%} bound (Bonferroni: level {LEVEL:g}/{m} each, m={m})"
        )
    e = min(checked, key=lambda e: e["difference"])
    return (
        f"closest: {e['name']}, {e['saving']:.1f}x smaller, validation {metric} "
        f"{e['difference']:.4f} below, beyond the margin already (no bound needed)"
    )


def singles_not_clearly_above_average(
    candidates: Sequence[CandidateResult],
    y_val: np.ndarray,
    reference_val: np.ndarray | None,
    metric: str,
    seed: int,
) -> list[dict[str, object]]:
    """The single fits set aside by "single fits must clearly beat the seed average"
    (see the module docstring), with their numbers; empty when there is no seed average.

    Parameters
    ----------
    candidates : sequence of CandidateResult
    y_val : array of int
        Class indices of the validation rows.
    reference_val : array, optional
        Teacher probabilities on the validation rows (agreement metrics).
    metric : str
        The selection metric (higher is better).
    seed : int
        Seed of the bootstrap resamples.

    Returns
    -------
    list of dict
        ``name``, ``val``, ``average``, ``average_val``, ``share_average_below`` per
        single fit set aside, best on validation first.
    """
    averages = [c for c in candidates if c.spec is not None and _members(c) > 1]
    if not averages:
        return []
    average = max(averages, key=lambda c: rank_key(c, metric))
    average_score = score_of(average, metric)
    if not math.isfinite(average_score):
        return []
    above = [
        c for c in candidates
        if c.spec is not None and c.spec.family == average.spec.family and _members(c) == 1
        # A tie is not "clearly above" either (ties would go to the smaller single).
        and score_of(c, metric) >= average_score
    ]
    if not above:
        return []
    above.sort(key=lambda c: rank_key(c, metric), reverse=True)
    bootstrap = PairedBootstrap(y_val, None, metric, reference_val, n_boot=AVERAGE_BOOT,
                                seed=seed)
    average_scores, *singles = bootstrap.scores_many(
        [average.val_proba, *(c.val_proba for c in above)]
    )
    aside = []
    for c, scores in zip(above, singles, strict=True):
        valid = ~(np.isnan(average_scores) | np.isnan(scores))
        share = float(np.mean(average_scores[valid] < scores[valid])) if valid.any() else 0.0
        if share < CLEARLY_ABOVE:
            aside.append({"name": c.name, "val": score_of(c, metric), "average": average.name,
                          "average_val": average_score, "share_average_below": share})
    return aside


def _members(result: CandidateResult) -> int:
    """Copies averaged in ``result`` (1: a single fit)."""
    return int(result.spec.params.get(N_MEMBERS, 1)) if result.spec is not None else 1
