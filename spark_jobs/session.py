"""The one place a Spark session is built, so every job and test runs with the same settings.

Master precedence: the ``master`` argument, then ``SPARK_MASTER``, then what ``spark-submit`` resolved
(its ``--master``) when the job was launched by it, then the ``ADFAME_SPARK_MASTER`` setting (how a
deployment points nightly_etl's tasks at a cluster, e.g. the stack's ``spark://127.0.0.1:7077``), then
``local[2]`` (the project's machines have two cores). The jobs themselves never name a master.

On a cluster the session ships the project's code with the application (``spark_jobs.code_archive``), and
executors' Python workers run this interpreter (``PYSPARK_PYTHON`` set elsewhere wins): every host needs
it at the same path, which the same image gives.
"""

from __future__ import annotations

import os
import sys

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from adfame.settings import get_settings
from spark_jobs.code_archive import project_code_archive

DEFAULT_MASTER = "local[2]"
LOCAL_SHUFFLE_PARTITIONS = 4
LOG_LEVEL = "ERROR"
# Local mode runs everything in the driver's JVM; its 1 GB default runs out at a million metadata rows.
LOCAL_DRIVER_MEMORY = os.environ.get("SPARK_DRIVER_MEMORY", "4g")


def resolve_master(master: str | None = None) -> str:
    """The master a new session will use; an explicit choice always beats the launcher's."""
    if master:
        return master
    if os.environ.get("SPARK_MASTER"):
        return os.environ["SPARK_MASTER"]
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # Started by spark-submit: its JVM already holds the resolved master as a system property.
        SparkContext._ensure_initialized()
        return SparkConf().get("spark.master", DEFAULT_MASTER)
    return get_settings().spark_master or DEFAULT_MASTER


def get_spark(app_name: str, master: str | None = None) -> SparkSession:
    """The active session if there is one (tests share one JVM), else a new one configured for the project."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    resolved = resolve_master(master)
    local = resolved.startswith("local")
    # Python workers (local, or on a cluster's executors) must run this interpreter: PATH's python3 may
    # lack pandas/pyarrow for the UDFs.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(resolved)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.log.level", LOG_LEVEL)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if local:
        # The default of 200 shuffle partitions turns every small local aggregation into 200 tiny tasks.
        builder = builder.config("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS)).config(
            "spark.driver.memory", LOCAL_DRIVER_MEMORY
        )
    else:
        # On a cluster the partitions follow the data: adaptive execution coalesces Spark's 200 shuffle
        # partitions by size, also below the jobs' cached stages (by default a cached plan keeps all 200,
        # and each became a task: 1,200 tasks for a 3,000-row curation).
        builder = builder.config("spark.sql.optimizer.canChangeCachedPlanOutputPartitioning", "true")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(LOG_LEVEL)
    if not local:
        spark.sparkContext.addPyFile(str(project_code_archive()))
    return spark
