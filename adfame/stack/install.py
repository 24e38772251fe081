"""Finds or installs what the local stack runs on: PostgreSQL, Java, the Kafka jars, SeaweedFS and Spark.

Downloads go through the ordinary registries (Debian packages, Maven Central,
the Go module proxy) and land in caches shared by every checkout
(``~/.m2``, the Go build cache, ``settings.cache_dir``), so a second clone
installs in seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adfame.settings import Settings
from adfame.stack import StackError
from adfame.stack.process import run_checked

log = logging.getLogger(__name__)
BUILD_DIR = Path(__file__).resolve().parent / "build"
MIN_JAVA = 17


def _is_root() -> bool:
    return os.geteuid() == 0


def _apt_install(*packages: str) -> None:
    if not (_is_root() and shutil.which("apt-get")):
        raise StackError(
            f"missing system packages {', '.join(packages)}: install them with your package "
            f"manager (Debian: sudo apt-get install {' '.join(packages)})"
        )
    log.info("installing %s with apt-get", " ".join(packages))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        run_checked(command, f"`{' '.join(command)}`", env=env)


def _find_or_apt_install(find: Callable[[], Path | None], package: str, install: bool, missing: str) -> Path:
    """A system program ``find`` locates; installed from ``package`` first when it is missing and
    installing is allowed; else a StackError with the ``missing`` message."""
    found = find()
    if found is None and install:
        _apt_install(package)
        found = find()
    if found is None:
        raise StackError(missing)
    return found


def _build_tool(name: str, why: str, *fallbacks: Path) -> str:
    """A build tool needed once (Maven, Go), or a StackError saying why it is needed."""
    found = shutil.which(name) or next((str(path) for path in fallbacks if path.exists()), None)
    if found is None:
        raise StackError(why)
    return found


def _build_into(
    target: Path, staging: Path, command: list[str], what: str, done: Callable[[Path], bool], **kwargs: Any
) -> Path:
    """Run a fetch or build that writes ``staging``, then rename it to ``target``: the cache holds
    complete results only (``done`` says what complete is), so an interrupted install is redone."""
    try:
        run_checked(command, what, **kwargs)
        if not done(staging):
            raise StackError(f"{what} left no result in {staging}")
    except StackError:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)
        raise
    staging.rename(target)
    return target


# ---- PostgreSQL -------------------------------------------------------------
def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server bin folder on the machine (Debian layout first)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("postgres")
    return Path(found).parent if found else None


def ensure_postgres(install: bool) -> Path:
    return _find_or_apt_install(
        postgres_bindir,
        "postgresql",
        install,
        "PostgreSQL server not found (no /usr/lib/postgresql/*/bin/postgres): "
        "run `adfame stack install` or `apt-get install postgresql`",
    )


# ---- Java -------------------------------------------------------------------
def java_binary() -> Path | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return Path(home) / "bin" / "java"
    found = shutil.which("java")
    return Path(found) if found else None


def java_major(java: Path) -> int:
    result = subprocess.run([str(java), "-version"], capture_output=True, text=True)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        raise StackError(f"could not read the version of {java}: {result.stderr.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major


def ensure_java(install: bool) -> Path:
    java = _find_or_apt_install(
        java_binary,
        "openjdk-17-jre-headless",
        install,
        f"Kafka needs Java {MIN_JAVA} or newer, but `java` is not on PATH and JAVA_HOME is "
        "not set: run `adfame stack install` (as root) or install a JDK/JRE "
        "(Debian: apt-get install openjdk-17-jre-headless)",
    )
    major = java_major(java)
    if major < MIN_JAVA:
        raise StackError(
            f"Kafka needs Java {MIN_JAVA} or newer; {java} is Java {major}: set JAVA_HOME to a newer one"
        )
    return java


# ---- Kafka jars ---------------------------------------------------------------
def kafka_libs(settings: Settings) -> Path:
    """The jar folder; its name pins the Kafka version and the pom that resolved it."""
    digest = hashlib.sha256((BUILD_DIR / "kafka" / "pom.xml").read_bytes()).hexdigest()[:12]
    return settings.cache_dir / f"kafka-{settings.kafka_version}-{digest}" / "libs"


def _has_kafka_jars(folder: Path) -> bool:
    return any(folder.glob("kafka_2.13-*.jar"))


def ensure_kafka_jars(settings: Settings, install: bool) -> Path:
    """Resolve Kafka's jars from Maven Central with the committed pom (cached in ~/.m2)."""
    libs = kafka_libs(settings)
    if _has_kafka_jars(libs):
        return libs
    if not install:
        raise StackError(
            f"Kafka {settings.kafka_version} jars are not installed in {libs}: run `adfame stack install`"
        )
    mvn = _build_tool(
        "mvn",
        "Maven (`mvn`) is needed once to fetch the Kafka jars from Maven Central: "
        "install it (Debian: apt-get install maven)",
    )
    log.info("fetching Kafka %s jars from Maven Central into %s", settings.kafka_version, libs)
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=libs.parent, prefix=".libs-"))
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(BUILD_DIR / "kafka" / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
        f"-Dkafka.version={settings.kafka_version}",
    ]
    return _build_into(libs, staging, command, "fetching the Kafka jars", _has_kafka_jars)


# ---- Spark (the standalone cluster) -------------------------------------------------
def spark_home() -> Path:
    """Spark's home for the cluster's daemons: the PySpark package of this environment ships the jars and
    ``bin/spark-class`` of its release, so the cluster runs the very Spark the jobs were written for."""
    spec = importlib.util.find_spec("pyspark")
    home = Path(spec.origin).parent if spec is not None and spec.origin else None
    if home is None or not (home / "bin" / "spark-class").exists():
        raise StackError(
            "the Spark cluster runs on PySpark's jars, but this environment has no complete pyspark "
            "(bin/spark-class): run `make setup`"
        )
    return home


# ---- SeaweedFS ----------------------------------------------------------------
def seaweedfs_binary(settings: Settings) -> Path:
    """Where the `weed` built from the committed go.sum lives; its folder name pins that go.sum."""
    digest = hashlib.sha256((BUILD_DIR / "seaweedfs" / "go.sum").read_bytes()).hexdigest()[:12]
    return settings.cache_dir / f"seaweedfs-{digest}" / "weed"


def ensure_seaweedfs(settings: Settings, install: bool) -> Path:
    """Build SeaweedFS's `weed` from the Go module proxy with the committed tools module."""
    binary = seaweedfs_binary(settings)
    if binary.exists():
        return binary
    if not install:
        raise StackError(f"SeaweedFS is not built yet ({binary} is missing): run `adfame stack install`")
    go = _build_tool(
        "go",
        "Go is needed once to build the S3 server (SeaweedFS): install Go 1.24 or newer",
        Path("/usr/local/go/bin/go"),
    )
    log.info("building SeaweedFS into %s (a few minutes the first time; cached afterwards)", binary)
    binary.parent.mkdir(parents=True, exist_ok=True)
    staging = binary.with_suffix(".partial")
    return _build_into(
        binary,
        staging,
        [go, "build", "-trimpath", "-o", str(staging), "github.com/seaweedfs/seaweedfs/weed"],
        "building SeaweedFS",
        Path.exists,
        cwd=BUILD_DIR / "seaweedfs",
        env={**os.environ, "GOFLAGS": "-buildvcs=false"},
    )


# ---- Chromium (browser tests of the selection page) ------------------------------------------
def chromium_binary() -> Path | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else None


def ensure_chromium(install_missing: bool) -> Path:
    """Debian's Chromium: Playwright's own browser download cannot work on an offline machine."""
    missing = "the browser tests need Chromium: apt-get install chromium"
    return _find_or_apt_install(chromium_binary, "chromium", install_missing, missing)
