"""hpmkd_app: the service layer behind the Streamlit app.

Pages in ``pages/`` only render; everything they need comes from here:

- :mod:`hpmkd_app.state` — session-state keys and typed accessors; ``state.INPUTS`` lists
  every input of a run in one place;
- :mod:`hpmkd_app.sessions` — runs bound to the fingerprint of their inputs
  (:mod:`hpmkd_app.session_codec`, :mod:`hpmkd_app.run_history`) and the session kept on
  the server under ``?session=<token>`` (:mod:`hpmkd_app.session_store`);
- :mod:`hpmkd_app.tables` — uploads and the sample table, previews, class balance;
- :mod:`hpmkd_app.teachers` — teacher sources (uploaded files through the restricted
  loader, probability columns, the reference LightGBM teacher) and the dataset build;
- :mod:`hpmkd_app.configform` — the ``HPMConfig`` form: one widget per field;
- :mod:`hpmkd_app.jobs` — the job registry (start, find, cancel runs); the job thread is
  :mod:`hpmkd_app.runner`, finished runs on disk are :mod:`hpmkd_app.run_cache`;
- :mod:`hpmkd_app.progress` — phase status, leaderboard and event log folded from events;
- :mod:`hpmkd_app.panels` — the HPM component panels, one renderer per typed record, fed
  by the finished run or by :mod:`hpmkd_app.live_records` (records rebuilt from events);
- :mod:`hpmkd_app.compare`, :mod:`hpmkd_app.charts`, :mod:`hpmkd_app.explain` — the
  Compare page's numbers (from the run's ``RunResult``), the layout of the engine's shared
  figures (:mod:`hpmkd.report.figures`) and feature importances;
- :mod:`hpmkd_app.exports` — bytes for the Export page's downloads;
- :mod:`hpmkd_app.cached` — the only module using ``st.cache_*``;
- :mod:`hpmkd_app.ui` — small rendering helpers shared by pages (guards, links, sidebar);
- :mod:`hpmkd_app.paths` — the private app directory under ``$HPMKD_HOME``.

The engine (:mod:`hpmkd`) never imports Streamlit; this package is the only bridge.
"""

from __future__ import annotations

__all__: list[str] = []
