"""Phase 2, chain: the progressive distillation chain (``use_progressive``).

Students of the top-ranked family are trained one after another up the capacity ladder,
each from the teacher mixed with the stage before it, with temperatures from the
scheduler; see :class:`~hpmkd.components.chain.ProgressiveDistillationChain`.
"""

from __future__ import annotations

from typing import Any

from hpmkd.components.chain import ProgressiveDistillationChain
from hpmkd.components.config_manager import SelectedConfig
from hpmkd.engine.session import RunSession
from hpmkd.engine.train import first_round_ahead
from hpmkd.evaluate import CandidateResult
from hpmkd.result import ChainRecord
from hpmkd.students import StudentSpec


def progressive_chain(session: RunSession, selected: list[SelectedConfig]) -> ChainRecord | None:
    """Train the chain for the best selected configuration's family and alpha.

    Returns
    -------
    ChainRecord or None
        ``None`` when the method has no chain (legacy).
    """
    cfg = session.config
    if not session.plan.components:
        return None
    with session.phase("chain", "progressive distillation chain"):
        if not cfg.use_progressive:
            return ChainRecord(enabled=False, reason="use_progressive=False", stages=())
        if not selected or session.should_stop():
            return ChainRecord(enabled=False, reason=str(session.stop_reason), stages=())
        top = selected[0]
        chain = ProgressiveDistillationChain(
            family=top.family,
            alpha=top.alpha,
            scheduler=session.scheduler,
            metric=cfg.selection_metric,
            min_improvement=cfg.min_improvement,
            max_stages=cfg.max_chain_stages,
        )
        # Above HALVING_MIN_ROWS training rows the chain trains on the rung-0 subsample
        # of phase 3: its stages are compared with each other and with rung-0 trials, and
        # on nyc_flights_delay (196,000 rows) four full-row stages took a quarter of the run.
        sub = session.halving_context()
        stages = len(chain.ladder())
        started = 0

        def train(spec: StudentSpec, name: str, **kwargs: Any) -> CandidateResult:
            nonlocal started
            started += 1
            if sub is None:
                return session.train(spec, name=name, **kwargs)
            if session.executor.background_slots():
                # Phase 3's first rung-0 trials start in a worker the stages (trained
                # here, one at a time) leave waiting: on nyc_flights_delay the chain kept
                # 1.1 cores busy of two. Only their exact specs are ever taken.
                session.ahead_in_background(
                    first_round_ahead(session, selected, stages - started, top.family),
                    sub,
                    training=spec,
                )
            return session.train(
                spec, ctx=sub, name=f"{name} [{len(sub.y_train):,} rows]", **kwargs
            )

        outcome = chain.run(
            sub or session.ctx, train, session.random_state, session.should_stop
        )
        # Records why, when the chain ended on a stop (its component only sees a flag).
        session.should_stop()
        for rec in outcome.records:
            session.temperature_log.append(
                {
                    "stage": rec["stage"],
                    "candidate": rec["name"],
                    "temperature": rec["temperature"],
                    "reason": rec["temperature_reason"],
                }
            )
        record = ChainRecord(
            enabled=True,
            family=top.family,
            alpha=top.alpha,
            stages=tuple(outcome.records),
            stop_reason=outcome.stop_reason
            if session.stop_reason is None
            else f"{outcome.stop_reason} ({session.stop_reason})",
        )
        session.bus.emit("info", phase="chain", message=outcome.stop_reason, chain=record.to_dict())
        return record
