"""The migration files and the runner's pure logic: naming, ordering, checksums. No database needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adfame import db


def _write(directory: Path, name: str, sql: str = "-- test\nSELECT 1;\n") -> Path:
    path = directory / name
    path.write_text(sql)
    return path


def test_repository_migrations_are_contiguous_from_one() -> None:
    migrations = db.discover_migrations()
    assert migrations, "sql/ holds no migrations"
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name.startswith("V001__")


def test_every_sql_file_in_the_folder_is_a_well_named_migration() -> None:
    for path in db.MIGRATIONS_DIR.glob("*.sql"):
        db.parse_migration_name(path.name)  # raises for a stray or misnamed file


@pytest.mark.parametrize("migration", db.discover_migrations(), ids=lambda m: m.name)
def test_migration_is_non_empty_commented_and_transaction_safe(migration: db.Migration) -> None:
    sql = migration.sql
    assert sql.strip()
    assert sql.startswith("--"), "each file starts with a comment saying what it does and why"
    # The runner wraps each file in its own transaction; a file must not manage transactions itself.
    assert not re.search(r"^\s*(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION)\s*;", sql, re.I | re.M)
    assert "CONCURRENTLY" not in sql.upper(), "CREATE INDEX CONCURRENTLY cannot run inside a transaction"


def test_initial_schema_creates_every_design_table(design_tables: frozenset[str]) -> None:
    created = set()
    for migration in db.discover_migrations():
        created |= {t.lower() for t in re.findall(r"CREATE TABLE\s+(\w+)", migration.sql, re.I)}
    assert created >= design_tables
    assert db.MIGRATIONS_TABLE not in created, "the runner owns its own bookkeeping table"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("V001__initial_schema.sql", (1, "initial_schema")),
        ("V2__x.sql", (2, "x")),
        ("V010__add_index_2.sql", (10, "add_index_2")),
    ],
)
def test_parse_migration_name(filename: str, expected: tuple[int, str]) -> None:
    assert db.parse_migration_name(filename) == expected


@pytest.mark.parametrize(
    "filename",
    [
        "V001_initial.sql",  # one underscore
        "v001__initial.sql",  # lowercase v
        "V001__Initial.sql",  # uppercase slug
        "V001__.sql",  # no slug
        "V001__initial.SQL",
        "Vx__initial.sql",
        "V001__initial schema.sql",
        "V001__initial.sql.bak",
    ],
)
def test_parse_migration_name_rejects_bad_names(filename: str) -> None:
    with pytest.raises(ValueError, match="not a migration name"):
        db.parse_migration_name(filename)


def test_discovery_orders_numerically_not_lexically(tmp_path: Path) -> None:
    for version in (10, 2, 1, 9, 3, 4, 5, 6, 7, 8, 11):
        _write(tmp_path, f"V{version}__step_{version}.sql")
    _write(tmp_path, "README.md", "not a migration")
    assert [m.version for m in db.discover_migrations(tmp_path)] == list(range(1, 12))


def test_discovery_rejects_a_gap(tmp_path: Path) -> None:
    _write(tmp_path, "V001__a.sql")
    _write(tmp_path, "V003__c.sql")
    with pytest.raises(db.MigrationError, match="expected V002"):
        db.discover_migrations(tmp_path)


def test_discovery_rejects_a_duplicate_version(tmp_path: Path) -> None:
    _write(tmp_path, "V001__a.sql")
    _write(tmp_path, "V002__b.sql")
    _write(tmp_path, "V02__b_again.sql")
    with pytest.raises(db.MigrationError, match="without gaps or duplicates"):
        db.discover_migrations(tmp_path)


def test_discovery_rejects_an_empty_file(tmp_path: Path) -> None:
    _write(tmp_path, "V001__a.sql", "  \n\n")
    with pytest.raises(db.MigrationError, match="empty"):
        db.discover_migrations(tmp_path)


def test_discovery_rejects_a_misnamed_v_file(tmp_path: Path) -> None:
    _write(tmp_path, "V001__a.sql")
    _write(tmp_path, "V002-b.sql")
    with pytest.raises(ValueError, match=r"V002-b\.sql"):
        db.discover_migrations(tmp_path)


def test_empty_folder_has_no_migrations(tmp_path: Path) -> None:
    assert db.discover_migrations(tmp_path) == []


def test_checksum_is_sha256_stable_and_line_ending_neutral() -> None:
    digest = db.checksum("CREATE TABLE t (id int);\n")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == db.checksum("CREATE TABLE t (id int);\n")
    assert digest == db.checksum("CREATE TABLE t (id int);\r\n")
    assert digest != db.checksum("CREATE TABLE t (id bigint);\n")


def test_migration_checksum_follows_file_content(tmp_path: Path) -> None:
    path = _write(tmp_path, "V001__a.sql", "-- a\nSELECT 1;\n")
    (migration,) = db.discover_migrations(tmp_path)
    before = migration.checksum
    assert before == db.checksum(path.read_text())
    path.write_text("-- a\nSELECT 2;\n")
    assert migration.checksum != before


def test_lock_key_never_changes() -> None:
    # Old and new releases upgrading the same database at once must contend for the same lock.
    assert db.MIGRATION_LOCK_KEY == 8496126336868866602
    assert -(2**63) <= db.MIGRATION_LOCK_KEY < 2**63  # fits pg_advisory_lock(bigint)
