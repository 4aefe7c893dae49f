"""hpmkd — distill a heavy tabular teacher into a small, fast student.

Start with ``streamlit run app.py``; the pages guide you through data, configuration,
the run, the comparison and the downloads.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(
    page_title="hpmkd · knowledge distillation",
    page_icon=":material/school:",
    layout="wide",
)

from hpmkd_app import sessions, ui  # noqa: E402 - set_page_config must come first

pages = [
    st.Page(path, title=title, icon=icon, url_path=name, default=name == "data")
    for name, (path, title, icon) in ui.PAGES.items()
]
navigation = st.navigation(pages)
with st.sidebar:
    st.markdown("**hpmkd** distills a heavy *teacher* classifier into a small *student* "
                "and shows how close it gets. Work through the pages top to bottom.")
sessions.sync()  # a reload or a restart: the ?session= link brings the inputs back
navigation.run()
# After the page (pages never call st.stop), so the store holds what the page just
# changed; before the sidebar, so a sidebar that shows a change means it is stored (a
# reload right after a change finds it) and can say when the store refused it.
sessions.save()
with st.sidebar:
    ui.sidebar_summary()
