"""The project's Python code that Spark jobs run on executors, as one zip shipped with the application.

Why: on a cluster, executors run a job's Python functions (the caption-cleaning pandas UDF is
``spark_jobs.text`` on ``adfame.text``). Shipping the driver's own copy with the application
(``SparkContext.addPyFile``, what ``spark-submit --py-files`` does) puts it first on each executor's
import path, so every executor runs the code the driver runs, whatever version its host has installed.
The hosts still need the same Python and libraries (pyspark, pandas, pyarrow, pydantic): the same image.
"""

from __future__ import annotations

import atexit
import importlib
import shutil
import tempfile
import zipfile
from functools import cache
from pathlib import Path

# What executors import: the jobs and the core they use. Stages above them never run on executors.
SHIPPED_PACKAGES = ("adfame", "spark_jobs")


@cache
def project_code_archive() -> Path:
    """A zip of the shipped packages' modules, made once per driver process and removed at its exit."""
    folder = Path(tempfile.mkdtemp(prefix="adfame-spark-code-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    archive = folder / "adfame_code.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name in SHIPPED_PACKAGES:
            package = Path(importlib.import_module(name).__file__ or "").parent
            for module in sorted(package.rglob("*.py")):
                zipped.write(module, module.relative_to(package.parent).as_posix())
    return archive
