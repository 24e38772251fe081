"""Probes that tell whether each service answers, used by `adfame stack` and the healthcheck DAG."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime

import httpx

from adfame.settings import Settings, get_settings


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str


def postgres(settings: Settings | None = None, database: str = "postgres") -> Probe:
    import psycopg2

    settings = settings or get_settings()
    try:
        conn = psycopg2.connect(**settings.postgres_params(database), connect_timeout=3)
    except psycopg2.OperationalError as exc:
        return Probe(False, str(exc).strip().splitlines()[0] if str(exc).strip() else "connection failed")
    try:
        with conn.cursor() as cur:
            cur.execute("select current_setting('server_version')")
            version = cur.fetchone()[0]
    finally:
        conn.close()
    return Probe(True, f"PostgreSQL {version}")


def object_store(settings: Settings | None = None) -> Probe:
    from adfame.storage import ObjectStore, ObjectStoreError

    try:
        buckets = ObjectStore(settings, retries=1).list_buckets()
    except ObjectStoreError as exc:
        return Probe(False, str(exc))
    return Probe(True, f"{len(buckets)} buckets")


def _kafka_admin(settings: Settings):  # -> KafkaAdminClient | Probe
    """An admin client with short timeouts, or the Probe that says why there is none."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    if not listening(settings.kafka_host, settings.kafka_port):
        return Probe(False, f"nothing listens on {settings.kafka_bootstrap}")
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap,
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
            client_id="adfame-health",
        )
    except KafkaError as exc:
        return Probe(False, f"{exc.__class__.__name__}: {exc}")


def kafka(settings: Settings | None = None) -> Probe:
    from kafka.errors import KafkaError

    admin = _kafka_admin(settings or get_settings())
    if isinstance(admin, Probe):
        return admin
    try:
        topics = admin.list_topics()
    except KafkaError as exc:
        return Probe(False, f"{exc.__class__.__name__}: {exc}")
    finally:
        admin.close()
    return Probe(True, f"{len(topics)} topics")


def listening(host: str, port: int) -> bool:
    """Whether anything accepts connections on ``host:port``: a cheap check before a client's retries
    (a stopped broker is not reported through their noise), and before a server claims the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str) -> Probe:
    try:
        response = httpx.get(url, timeout=3)
    except httpx.TransportError as exc:
        return Probe(False, f"{exc.__class__.__name__} on {url}")
    return Probe(response.status_code == 200, f"HTTP {response.status_code}")


def mlflow(settings: Settings | None = None) -> Probe:
    settings = settings or get_settings()
    return http_ok(f"{settings.mlflow_url}/health")


def airflow_api(settings: Settings | None = None) -> Probe:
    settings = settings or get_settings()
    return http_ok(f"{settings.airflow_url}/api/v2/monitor/health")


def airflow_component(component: str, settings: Settings | None = None, since: float | None = None) -> Probe:
    """Heartbeat of ``scheduler``, ``dag_processor`` or ``triggerer`` as the API server sees it.

    With ``since`` (a Unix time), a heartbeat from before it does not count.
    """
    settings = settings or get_settings()
    try:
        response = httpx.get(f"{settings.airflow_url}/api/v2/monitor/health", timeout=3)
        body = response.json()
    except (httpx.TransportError, ValueError) as exc:
        return Probe(False, f"API server not answering ({exc.__class__.__name__})")
    info = body.get(component) or {}
    status = info.get("status")
    beat = info.get(f"latest_{component}_heartbeat")
    stale = since is not None and (not beat or datetime.fromisoformat(beat).timestamp() < since)
    if status == "healthy" and stale:
        return Probe(False, "waiting for the first heartbeat")
    return Probe(status == "healthy", f"heartbeat {status or 'unknown'}")


def edge_worker(name: str, settings: Settings | None = None, since: float | None = None) -> Probe:
    """Whether the edge worker ``name`` is registered with the API server and takes work (idle or running).

    With ``since`` (a Unix time), a heartbeat from before it does not count: a killed worker's row stays
    ``idle`` until the scheduler marks it ``unknown``.
    """
    from adfame.airflow_client import AirflowClient, AirflowError

    try:
        with AirflowClient(settings or get_settings(), timeout_s=5) as client:
            found = [w for w in client.edge_workers(name) if w["worker_name"] == name]
    except AirflowError as exc:
        return Probe(False, f"API server: HTTP {exc.status}" if exc.status else "API server not answering")
    if not found:
        return Probe(False, f"edge worker {name} not registered")
    worker = found[0]
    beat = worker.get("last_heartbeat")
    if since is not None and (not beat or datetime.fromisoformat(beat).timestamp() < since):
        return Probe(False, f"edge worker {name}: waiting for the first heartbeat")
    queues = ",".join(worker.get("queues") or ["all"])
    return Probe(worker["state"] in ("idle", "running"), f"edge worker {worker['state']}, queues {queues}")


def consumer_group(group: str, settings: Settings | None = None) -> Probe:
    """Whether the Kafka consumer group has live members (a worker that joined and heartbeats)."""
    from kafka.errors import KafkaError

    admin = _kafka_admin(settings or get_settings())
    if isinstance(admin, Probe):
        return admin
    try:
        described = admin.describe_groups([group]).get(group) or {}
    except KafkaError as exc:
        return Probe(False, f"{exc.__class__.__name__}: {exc}")
    finally:
        admin.close()
    members = len(described.get("members") or [])
    state = described.get("group_state", "unknown")
    return Probe(members > 0, f"group {group}: {state}, {members} member(s)")


def spark_master(settings: Settings | None = None) -> Probe:
    """The stack's Spark master answers its JSON status and says ALIVE."""
    from adfame.spark_cluster import SparkStatusUnavailable, master_status

    try:
        status = master_status(settings)
    except SparkStatusUnavailable as exc:
        return Probe(False, str(exc))
    alive = [w for w in status.get("workers", []) if w.get("state") == "ALIVE"]
    detail = f"{status.get('status')}, {len(alive)} worker(s), {status.get('cores', 0)} cores"
    return Probe(status.get("status") == "ALIVE", detail)


def spark_worker(settings: Settings | None = None) -> Probe:
    """The stack's Spark worker answers and its master lists it ALIVE: registered, so it gets executors."""
    from adfame.spark_cluster import SparkStatusUnavailable, master_status, worker_status

    try:
        worker = worker_status(settings)
        master = master_status(settings)
    except SparkStatusUnavailable as exc:
        return Probe(False, str(exc))
    listed = {w.get("id"): w.get("state") for w in master.get("workers", [])}
    state = listed.get(worker.get("id"), "not registered")
    detail = f"{worker.get('id')} {state} at {worker.get('masterurl')}, {worker.get('cores')} cores"
    return Probe(state == "ALIVE", detail)
