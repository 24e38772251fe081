"""`adfame simulate --select` on the real stack: a worker makes the candidates, a marketer with a taste picks.

Everything is real: the CLI submits through the REST API (served over this module's database), a worker
process (its own consumer group, the same database) generates with tiny-wan, the marketer downloads the
candidates through presigned URLs, scores them and posts its picks. 198 selections are recorded first,
so the simulated picks complete milestone 1; the API's trigger points at a DAG that does not exist, so
nothing runs in Airflow.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import finished_jobs, served
from sqlalchemy import Engine, text

from adfame.contracts import VIDEOS_BUCKET
from adfame.repositories.selections import insert_selection
from adfame.settings import Settings
from adfame.storage import ObjectStore
from devkit.consumer_groups import start_group_at_the_end
from inference.api import ApiOptions, create_app
from inference.model import init_default_model
from inference.tastes import parse_taste
from inference.video import decode_mp4

pytestmark = pytest.mark.integration
ADFAME = str(Path(sys.executable).parent / "adfame")
TASTE = "rgb:255,0,0"
PREFILLED = 198


@pytest.fixture(scope="module")
def database_env(engine: Engine) -> dict[str, str]:
    """The environment that points a process at this module's database."""
    return {**os.environ, "ADFAME_APP_DB": str(engine.url.database)}


@pytest.fixture(scope="module")
def worker(settings: Settings, database_env: dict[str, str], tmp_path_factory) -> Iterator[Path]:
    init_default_model(settings)
    group = f"test-simulate-{uuid.uuid4().hex[:8]}"
    start_group_at_the_end(settings, group)
    log_path = tmp_path_factory.mktemp("simulate") / "worker.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [ADFAME, "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**database_env, "ADFAME_WORKER_GROUP": group},
            start_new_session=True,
        )
    yield log_path
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def api_url(settings: Settings, engine: Engine) -> Iterator[str]:
    options = ApiOptions(retrain_dag_id="adfame_test_no_such_dag", milestone_retry_s=3600)
    with served(create_app(settings, options=options, engine=engine)) as url:
        yield url


def test_a_simulated_marketer_picks_by_its_taste_through_the_api(
    engine: Engine, database_env: dict[str, str], worker: Path, api_url: str, settings: Settings
) -> None:
    with engine.begin() as conn:
        for job in finished_jobs(engine, "earlier", PREFILLED):
            insert_selection(conn, job, 0, "earlier")
    command = [ADFAME, "simulate", "--select", "--taste", TASTE, "--count", "6", "--rate", "20"]
    command += ["--concurrency", "3", "--tenants", "brand-a,brand-b", "--api-url", api_url, "--seed", "3"]
    result = subprocess.run(command, env=database_env, capture_output=True, text=True, timeout=400)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output + worker.read_text()[-3000:]
    assert "submitted 6, selected 6, failed 0" in result.stdout, output
    assert "milestones reached: 1" in result.stdout, output

    with engine.connect() as conn:
        picks = conn.execute(
            text(
                "SELECT s.request_id, s.candidate_index, s.tenant, s.milestone, r.seed FROM selections s"
                " JOIN generation_requests r USING (request_id) WHERE s.tenant LIKE 'brand-%' ORDER BY s.seq"
            )
        ).all()
        live_keys = conn.execute(text("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")).scalar_one()
    assert sorted(p.tenant for p in picks) == ["brand-a"] * 3 + ["brand-b"] * 3
    assert [p.milestone for p in picks] == [1, 1, 2, 2, 2, 2]
    assert all(p.seed is not None for p in picks)  # each request has its seed, drawn from --seed
    assert live_keys == 0  # the keys the simulator made for itself are revoked

    # Each pick is the best candidate by the taste (p_best defaults to 1).
    store, taste = ObjectStore(settings), parse_taste(TASTE)
    for p in picks:
        scores = [
            taste.score(decode_mp4(store.get_bytes(VIDEOS_BUCKET, f"{p.tenant}/{p.request_id}/{i}.mp4")))
            for i in range(5)
        ]
        assert p.candidate_index == scores.index(max(scores)), (p, scores)
