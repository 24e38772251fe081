"""PostgreSQL plumbing shared by every stage: engines, sessions and the schema migration runner.

The schema is ``sql/V<NNN>__<slug>.sql`` (docs/architecture.md#tables). ``upgrade()`` applies the ones a
database has not seen yet, in version order, one transaction per file, and records each in
``schema_migrations`` so that a second run is a no-op. An advisory lock serialises concurrent
upgrades (several workers or DAG tasks starting at once), and a checksum per file refuses to run
against a database whose applied migrations were edited afterwards.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext

from adfame.settings import PROJECT_ROOT, Settings, get_settings

MIGRATIONS_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_TABLE = "schema_migrations"
# Any fixed 64-bit key works; all AdFame processes must agree on it.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"adfame.schema_migrations").digest()[:8], "big", signed=True
)

_FILE_RE = re.compile(r"^V(?P<version>\d+)__(?P<slug>[a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL could not be reached; the message says where and what to do."""


class MigrationError(RuntimeError):
    """The migration files or the recorded history are inconsistent; nothing further was applied."""


# ---- migration files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One ``V<NNN>__<slug>.sql`` file."""

    version: int
    slug: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return checksum(self.sql)


def checksum(sql: str) -> str:
    """sha256 of the text with normalised line endings, so a CRLF checkout does not look edited."""
    return hashlib.sha256(sql.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def parse_migration_name(filename: str) -> tuple[int, str]:
    """``V001__initial_schema.sql`` -> ``(1, "initial_schema")``; ValueError for anything else."""
    match = _FILE_RE.match(filename)
    if not match:
        raise ValueError(f"{filename!r} is not a migration name (expected V<number>__<lowercase_slug>.sql)")
    return int(match["version"]), match["slug"]


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The ``V*.sql`` files in version order; they must be well named, non-empty and numbered 1..n."""
    migrations = []
    for path in directory.glob("V*.sql"):
        version, slug = parse_migration_name(path.name)
        migrations.append(Migration(version, slug, path))
    migrations.sort(key=lambda m: m.version)
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration versions must run 1..n without gaps or duplicates: expected V{expected:03d}, "
                f"found {migration.name} in {directory}"
            )
        if not migration.sql.strip():
            raise MigrationError(f"{migration.path} is empty")
    return migrations


# ---- engines and sessions -----------------------------------------------------------------------


def create_engine_for(settings: Settings | None = None, database: str | None = None) -> Engine:
    """An engine for one database (default: the app DB) whose connection errors say what to do."""
    settings = settings or get_settings()
    new_engine = create_engine(
        settings.database_url(database),
        pool_pre_ping=True,  # survive a PostgreSQL restart without failing the next request
        pool_size=5,
        max_overflow=10,
        pool_recycle=1800,
        connect_args={"connect_timeout": 10, "application_name": "adfame"},
    )
    event.listen(new_engine, "handle_error", _explain_connect_failure)
    return new_engine


def _explain_connect_failure(context: ExceptionContext) -> Exception | None:
    """Turn a failure to open a connection into one readable error; query errors pass through."""
    if context.connection is not None or context.engine is None or context.is_pre_ping:
        return None
    url = context.engine.url
    reason = str(context.original_exception).strip().splitlines()[0] if context.original_exception else ""
    return DatabaseUnavailable(
        f"cannot connect to PostgreSQL at {url.host}:{url.port}, database {url.database!r} "
        f"as user {url.username!r}: {reason}. Is the stack running? Start it with `adfame stack up`."
    )


_engine: Engine | None = None
_engine_lock = threading.Lock()


def engine() -> Engine:
    """The process-wide engine for the app database, created on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = create_engine_for()
        return _engine


def _drop_inherited_pool() -> None:
    # A forked child (Airflow LocalExecutor, multiprocessing) must not share the parent's sockets.
    if _engine is not None:
        _engine.dispose(close=False)


os.register_at_fork(after_in_child=_drop_inherited_pool)


# ---- migration runner ---------------------------------------------------------------------------

_CREATE_MIGRATIONS_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def upgrade(bind: Engine | None = None, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations in order and return their file names ([] when up to date)."""
    migrations = discover_migrations(directory)
    bind = bind or engine()
    applied_now: list[str] = []
    with bind.connect() as conn, _migration_lock(conn):
        with conn.begin():
            conn.exec_driver_sql(_CREATE_MIGRATIONS_TABLE)
            recorded = _recorded_checksums(conn)
        _check_history(migrations, recorded, bind.url.database)
        for migration in migrations:
            if migration.version in recorded:
                continue
            with conn.begin():
                _run_script(conn, migration)
                conn.execute(
                    text(f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum) VALUES (:v, :n, :c)"),
                    {"v": migration.version, "n": migration.name, "c": migration.checksum},
                )
            applied_now.append(migration.name)
    return applied_now


def current_version(bind: Engine | None = None) -> int:
    """The highest applied migration version, 0 for a database that was never upgraded."""
    with (bind or engine()).connect() as conn:
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": MIGRATIONS_TABLE}).scalar() is None:
            return 0
        return conn.execute(text(f"SELECT coalesce(max(version), 0) FROM {MIGRATIONS_TABLE}")).scalar_one()


@contextmanager
def _migration_lock(conn: Connection) -> Iterator[None]:
    """Hold a session-level advisory lock so concurrent upgrades run one after the other."""
    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    conn.commit()
    try:
        yield
    finally:
        try:
            conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            conn.commit()
        except Exception:
            conn.invalidate()  # closing the server session releases the lock too


def _run_script(conn: Connection, migration: Migration) -> None:
    """Send the file as one script on the raw cursor, so '%' and several statements pass untouched."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(migration.sql)
    except Exception as exc:
        raise MigrationError(f"{migration.name} failed and was rolled back: {exc}".strip()) from exc
    finally:
        cursor.close()


def _recorded_checksums(conn: Connection) -> dict[int, str]:
    rows = conn.execute(text(f"SELECT version, checksum FROM {MIGRATIONS_TABLE}"))
    return {version: digest for version, digest in rows}


def _check_history(migrations: list[Migration], recorded: dict[int, str], database: str | None) -> None:
    """Refuse to go on when applied files were edited or the database is ahead of this checkout."""
    known = {m.version: m for m in migrations}
    unknown = sorted(set(recorded) - set(known))
    if unknown:
        raise MigrationError(
            f"database {database!r} has migrations {unknown} that this checkout does not have; "
            "update the code before upgrading"
        )
    for version, recorded_checksum in sorted(recorded.items()):
        migration = known[version]
        if migration.checksum != recorded_checksum:
            raise MigrationError(
                f"{migration.name} changed after it was applied to database {database!r} "
                f"(recorded sha256 {recorded_checksum[:12]}..., file now {migration.checksum[:12]}...). "
                "Applied migrations are immutable: revert the edit and put the change in a new V file."
            )
