"""Demo and test tooling: the generated data mirror, the local Hub server, the ETL demo runner,
the mp4 reader of the tests and the read-only stack snapshot that proves a run left a stack alone.

Kept out of the runtime packages (``etl``, ``spark_jobs``, ``inference``, ...) so that what the
pipeline ships is only what runs in production; runtime code never imports ``devkit``.
"""
