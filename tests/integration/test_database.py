"""The schema and the migration runner against a real PostgreSQL (the stack's, from get_settings()).

Each test module works in its own freshly created, uniquely named databases and drops them at the
end, so it never touches the app database and can run beside a live stack.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from adfame import db
from adfame.settings import get_settings

pytestmark = pytest.mark.integration

ALL_MIGRATIONS = [m.name for m in db.discover_migrations()]


@pytest.fixture(scope="module")
def migrated(new_database: Callable[..., Engine]) -> tuple[Engine, list[str]]:
    """One upgraded database for the schema tests, with what its first upgrade applied."""
    engine = new_database()
    assert db.current_version(engine) == 0
    return engine, db.upgrade(engine)


def _new_request(session: Connection, tenant: str = "acme") -> uuid.UUID:
    request_id = uuid.uuid4()
    session.execute(
        text(
            "INSERT INTO generation_requests (request_id, tenant, prompt, height, width, route, timings)"
            " VALUES (:id, :tenant, 'A sunset over the ocean', 64, 64, 'champion', CAST(:timings AS jsonb))"
        ),
        {"id": request_id, "tenant": tenant, "timings": json.dumps({"queue_wait_s": 0.1, "denoise_s": 0.4})},
    )
    for index in range(5):
        session.execute(
            text(
                "INSERT INTO candidates (request_id, candidate_index, variation_prompt, seed, object_key)"
                " VALUES (:id, :i, :p, :seed, :key)"
            ),
            {
                "id": request_id,
                "i": index,
                "p": f"variation {index}",
                "seed": 1000 + index,
                "key": f"{tenant}/{request_id}/{index}.mp4",
            },
        )
    return request_id


def _select(session: Connection, request_id: uuid.UUID, index: int, tenant: str = "acme") -> None:
    session.execute(
        text(
            "INSERT INTO selections (request_id, candidate_index, tenant, milestone)"
            " VALUES (:id, :i, :tenant, 1)"
        ),
        {"id": request_id, "i": index, "tenant": tenant},
    )


def _pgcode(error: IntegrityError) -> str:
    return error.orig.pgcode  # type: ignore[union-attr]


def test_first_upgrade_applies_every_migration(migrated: tuple[Engine, list[str]]) -> None:
    engine, applied = migrated
    assert applied == ALL_MIGRATIONS
    assert db.current_version(engine) == len(ALL_MIGRATIONS)


def test_all_tables_exist(migrated: tuple[Engine, list[str]], design_tables: frozenset[str]) -> None:
    engine, _ = migrated
    assert set(inspect(engine).get_table_names()) >= design_tables | {db.MIGRATIONS_TABLE}


def test_second_upgrade_applies_nothing(migrated: tuple[Engine, list[str]]) -> None:
    engine, _ = migrated
    assert db.upgrade(engine) == []
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        ).all()
    assert [(r.version, r.name) for r in rows] == [(i + 1, n) for i, n in enumerate(ALL_MIGRATIONS)]
    assert [r.checksum for r in rows] == [m.checksum for m in db.discover_migrations()]


def test_request_candidates_and_selection_round_trip(migrated: tuple[Engine, list[str]]) -> None:
    engine, _ = migrated
    with engine.begin() as session:
        request_id = _new_request(session)
        _select(session, request_id, 3)
    with engine.begin() as session:
        request = session.execute(
            text(
                "SELECT status, route, num_candidates, timings"
                " FROM generation_requests WHERE request_id = :id"
            ),
            {"id": request_id},
        ).one()
        candidates = session.execute(
            text(
                "SELECT candidate_index, seed, object_key FROM candidates WHERE request_id = :id ORDER BY 1"
            ),
            {"id": request_id},
        ).all()
        chosen = session.execute(
            text(
                "SELECT s.seq, c.variation_prompt FROM selections s"
                " JOIN candidates c USING (request_id, candidate_index) WHERE s.request_id = :id"
            ),
            {"id": request_id},
        ).one()
    assert (request.status, request.route, request.num_candidates) == ("queued", "champion", 5)
    assert request.timings == {"queue_wait_s": 0.1, "denoise_s": 0.4}
    assert [c.candidate_index for c in candidates] == [0, 1, 2, 3, 4]
    assert candidates[3].object_key == f"acme/{request_id}/3.mp4"
    assert chosen.variation_prompt == "variation 3"
    assert chosen.seq >= 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE generation_requests SET status = 'exploded'",
        "UPDATE generation_requests SET route = 'canary'",
        "INSERT INTO deployments (model_name, model_version, alias, traffic_weight)"
        " VALUES ('adfame-wan-lora', '1', 'challenger', 101)",
        "INSERT INTO deployments (model_name, model_version, alias, state)"
        " VALUES ('adfame-wan-lora', '1', 'challenger', 'live')",
    ],
)
def test_check_constraints_reject_bad_values(migrated: tuple[Engine, list[str]], statement: str) -> None:
    engine, _ = migrated
    with engine.begin() as session:
        _new_request(session)
    with pytest.raises(IntegrityError) as caught, engine.begin() as session:
        session.execute(text(statement))
    assert _pgcode(caught.value) == "23514"  # check_violation


def test_second_selection_for_a_request_is_refused(migrated: tuple[Engine, list[str]]) -> None:
    engine, _ = migrated
    with engine.begin() as session:
        request_id = _new_request(session)
        _select(session, request_id, 0)
    with pytest.raises(IntegrityError) as caught, engine.begin() as session:
        _select(session, request_id, 1)
    assert _pgcode(caught.value) == "23505"  # unique_violation
    with engine.connect() as conn:
        picked = conn.execute(
            text("SELECT candidate_index FROM selections WHERE request_id = :id"), {"id": request_id}
        ).scalar_one()
    assert picked == 0


def test_selection_must_name_an_existing_candidate(migrated: tuple[Engine, list[str]]) -> None:
    engine, _ = migrated
    with engine.begin() as session:
        request_id = _new_request(session)
    with pytest.raises(IntegrityError) as caught, engine.begin() as session:
        _select(session, request_id, 7)
    assert _pgcode(caught.value) == "23503"  # foreign_key_violation


def test_edited_applied_migration_is_refused(migrated: tuple[Engine, list[str]], tmp_path: Path) -> None:
    engine, _ = migrated
    for migration in db.discover_migrations():
        shutil.copy(migration.path, tmp_path / migration.name)
    first = tmp_path / ALL_MIGRATIONS[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(
        db.MigrationError, match=re.escape(f"{ALL_MIGRATIONS[0]} changed after it was applied")
    ):
        db.upgrade(engine, tmp_path)


def test_database_ahead_of_the_checkout_is_refused(
    migrated: tuple[Engine, list[str]], tmp_path: Path
) -> None:
    engine, _ = migrated
    first = db.discover_migrations()[0]
    shutil.copy(first.path, tmp_path / first.name)
    with pytest.raises(db.MigrationError, match="does not have"):
        db.upgrade(engine, tmp_path)


def test_failing_migration_is_rolled_back_and_not_recorded(
    migrated: tuple[Engine, list[str]], tmp_path: Path
) -> None:
    engine, _ = migrated
    for migration in db.discover_migrations():
        shutil.copy(migration.path, tmp_path / migration.name)
    bad = tmp_path / f"V{len(ALL_MIGRATIONS) + 1:03d}__broken.sql"
    bad.write_text("-- fails half way\nCREATE TABLE half_done (id int);\nSELECT 1 / 0;\n")
    with pytest.raises(db.MigrationError, match=r"broken\.sql failed"):
        db.upgrade(engine, tmp_path)
    assert db.current_version(engine) == len(ALL_MIGRATIONS)
    assert "half_done" not in inspect(engine).get_table_names()


def test_concurrent_upgrades_apply_each_migration_once(
    new_database: Callable[..., Engine], design_tables: frozenset[str]
) -> None:
    target = new_database()
    workers = 4
    barrier = threading.Barrier(workers)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        engine = db.create_engine_for(get_settings(), database=target.url.database)
        try:
            barrier.wait(timeout=30)
            results.append(db.upgrade(engine))
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sorted(results, key=len) == [[]] * (workers - 1) + [ALL_MIGRATIONS]
    with target.connect() as conn:
        counts = conn.execute(text("SELECT version, count(*) FROM schema_migrations GROUP BY version")).all()
    assert sorted(counts) == [(i + 1, 1) for i in range(len(ALL_MIGRATIONS))]
    assert set(inspect(target).get_table_names()) >= design_tables | {db.MIGRATIONS_TABLE}
