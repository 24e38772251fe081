"""The curation pipeline behind ``nightly_etl``: sources, selective clip extraction, split, gate, load.

Spark jobs live in ``spark_jobs/``; this package holds the steps around them.
"""
