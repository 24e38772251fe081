"""Finds or installs what the local stack runs on: PostgreSQL, Java, the Kafka jars and SeaweedFS.

Downloads go through the ordinary registries (Debian packages, Maven Central,
the Go module proxy) and land in caches shared by every checkout
(``~/.m2``, the Go build cache, ``settings.cache_dir``), so a second clone
installs in seconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from adfame.settings import Settings
from adfame.stack import StackError

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
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"`{' '.join(command)}` failed:\n{result.stderr[-2000:]}")


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
    bindir = postgres_bindir()
    if bindir is None and install:
        _apt_install("postgresql")
        bindir = postgres_bindir()
    if bindir is None:
        raise StackError(
            "PostgreSQL server not found (no /usr/lib/postgresql/*/bin/postgres): "
            "run `adfame stack install` or `apt-get install postgresql`"
        )
    return bindir


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
    java = java_binary()
    if java is None and install:
        _apt_install("openjdk-17-jre-headless")
        java = java_binary()
    if java is None:
        raise StackError(
            f"Kafka needs Java {MIN_JAVA} or newer, but `java` is not on PATH and JAVA_HOME is "
            "not set: install a JDK/JRE (Debian: apt-get install openjdk-17-jre-headless)"
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


def ensure_kafka_jars(settings: Settings, install: bool) -> Path:
    """Resolve Kafka's jars from Maven Central with the committed pom (cached in ~/.m2)."""
    libs = kafka_libs(settings)
    if any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if not install:
        raise StackError(
            f"Kafka {settings.kafka_version} jars are not installed in {libs}: run `adfame stack install`"
        )
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (`mvn`) is needed once to fetch the Kafka jars from Maven Central: "
            "install it (Debian: apt-get install maven)"
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
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        raise StackError(f"fetching the Kafka jars failed:\n{(result.stdout + result.stderr)[-2000:]}")
    staging.rename(libs)
    return libs


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
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise StackError("Go is needed once to build the S3 server (SeaweedFS): install Go 1.24 or newer")
    log.info("building SeaweedFS into %s (a few minutes the first time; cached afterwards)", binary)
    binary.parent.mkdir(parents=True, exist_ok=True)
    staging = binary.with_suffix(".partial")
    result = subprocess.run(
        [go, "build", "-trimpath", "-o", str(staging), "github.com/seaweedfs/seaweedfs/weed"],
        cwd=BUILD_DIR / "seaweedfs",
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-buildvcs=false"},
    )
    if result.returncode != 0:
        staging.unlink(missing_ok=True)
        raise StackError(f"building SeaweedFS failed:\n{result.stderr[-3000:]}")
    staging.rename(binary)
    return binary


# ---- Chromium (browser tests of the selection page) ------------------------------------------
def chromium_binary() -> Path | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else None


def ensure_chromium(install_missing: bool) -> Path:
    """Debian's Chromium: Playwright's own browser download cannot work on an offline machine."""
    browser = chromium_binary()
    if browser is None and install_missing:
        _apt_install("chromium")
        browser = chromium_binary()
    if browser is None:
        raise StackError("the browser tests need Chromium: apt-get install chromium")
    return browser
