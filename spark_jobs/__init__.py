"""PySpark jobs: each runnable alone (``spark-submit`` or ``python -m``) and importable by tests; no torch."""
