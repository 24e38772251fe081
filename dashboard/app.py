"""The dashboard's entry script (`streamlit run dashboard/app.py`, or `adfame stack up dashboard`).

It sets the page up, draws what every page shares (the time window in the sidebar, where the data comes
from) and runs the page the viewer chose; each page is a script beside this one (docs/dashboard.md).
"""

from __future__ import annotations

import streamlit as st

from dashboard import sources

PAGES = [
    st.Page("offline_page.py", title="Offline", icon=":material/dataset:", url_path="offline", default=True),
    st.Page("online_page.py", title="Online", icon=":material/speed:", url_path="online"),
    st.Page("models_page.py", title="Models", icon=":material/model_training:", url_path="models"),
    st.Page("drift_page.py", title="Drift", icon=":material/query_stats:", url_path="drift"),
]

st.set_page_config(page_title="AdFame dashboard", page_icon=":material/monitoring:", layout="wide")
page = st.navigation(PAGES)
with st.sidebar:
    st.selectbox(
        "Time window", list(sources.WINDOWS), index=list(sources.WINDOWS).index(sources.DEFAULT_WINDOW),
        key=sources.WINDOW_KEY, help="what the Online, Models (quality) and Drift charts show",
    )  # fmt: skip
    settings = sources.settings()
    st.caption(f"PostgreSQL `{settings.postgres_host}:{settings.postgres_port}/{settings.app_db}`")
    st.caption(f"MLflow {settings.mlflow_url}, model `{settings.registered_model}`")
page.run()
