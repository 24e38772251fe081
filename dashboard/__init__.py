"""The Streamlit dashboard: datasets, serving, models and drift at a glance (docs/dashboard.md).

It only reads: PostgreSQL through ``adfame.repositories`` and the MLflow registry and its artifacts.
``app.py`` is the entry Streamlit runs (`adfame stack up dashboard`); one page script per view.
"""
