"""docker-compose.yaml mirrors the local stack: same services, ports, names and no secrets.

No Docker engine is needed: the file is read as YAML and checked against the
Settings defaults and the contracts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from adfame import contracts
from adfame.settings import ENV_PREFIX, Settings
from adfame.stack.services import AIRFLOW_EXECUTORS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"

INFRA_SERVICES = {"postgres", "kafka", "kafka-init", "s3", "s3-init", "mlflow"}
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
APP_SERVICES = {"worker": "worker", "api": "api", "dashboard": "dashboard"}
GPU_WORKER_SERVICES = {"redis", "airflow-worker", "airflow-gpu-worker"}
EDGE_WORKER = "airflow-edge-worker"
ONE_SHOT_SERVICES = {"kafka-init", "s3-init", "airflow-init"}
SPARK_SERVICES = {"spark-master": "spark_master_web_port", "spark-worker": "spark_worker_web_port"}

# Service -> the Settings field that holds its host port.
PUBLISHED_PORTS = {
    "postgres": "postgres_port",
    "kafka": "kafka_port",
    "s3": "s3_port",
    "mlflow": "mlflow_port",
    "airflow-api-server": "airflow_port",
}

SECRET_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|FERNET|JWT|TOKEN", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


@pytest.fixture(scope="module")
def text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict), "docker-compose.yaml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture
def defaults() -> Settings:
    """Settings with their defaults only: no ADFAME_* variables, no .env file."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(ENV_PREFIX):
                patch.delenv(name)
        return Settings(_env_file=None)


def resolve(value: Any) -> str:
    """A compose string as Compose would render it with an empty environment.

    ``${VAR:-default}`` gives its default, a variable without one gives ``<VAR>``,
    and ``$$`` (Compose's escape) gives ``$``.
    """

    def substitute(match: re.Match[str]) -> str:
        if match["op"] in (":-", "-"):
            return match["arg"]
        return f"<{match['name']}>"

    text = str(value).replace("$$", "\0")
    return INTERPOLATION.sub(substitute, text).replace("\0", "$")


def script(service: dict[str, Any]) -> str:
    """The shell text a service runs (entrypoint and command together)."""
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        parts.extend([value] if isinstance(value, str) else [str(item) for item in value])
    return resolve("\n".join(parts))


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) for each published port."""
    result = []
    for entry in service.get("ports", []):
        assert isinstance(entry, str), f"use the short 'ip:host:container' form: {entry!r}"
        host_ip, host_port, container_port = resolve(entry).split(":")
        result.append((host_ip, int(host_port), int(container_port.split("/")[0])))
    return result


# ---- services -----------------------------------------------------------------------


def test_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    expected = INFRA_SERVICES | AIRFLOW_SERVICES | set(APP_SERVICES) | set(SPARK_SERVICES)
    assert expected <= set(services), f"missing services: {sorted(expected - set(services))}"


def test_every_service_has_an_image_and_a_restart_policy(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("image") or service.get("build"), f"{name}: no image and nothing to build"
        assert service.get("restart"), f"{name}: no restart policy"
        if name in ONE_SHOT_SERVICES:
            assert service["restart"] == "no", f"{name} runs once; it must not be restarted"
        else:
            assert service["restart"] in ("always", "unless-stopped", "on-failure"), name


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT_SERVICES:
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name}: no healthcheck"
        assert not check.get("disable"), f"{name}: healthcheck disabled"


def test_dependencies_wait_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert dependency != name, f"{name} depends on itself"
            expected = (
                "service_completed_successfully" if dependency in ONE_SHOT_SERVICES else "service_healthy"
            )
            assert spec.get("condition") == expected, f"{name} -> {dependency}"


def test_volumes_are_named_or_files_of_the_repository(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for entry in service.get("volumes", []):
            source = entry.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind source {source} is not in the repository"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
    stateful = {"postgres", "kafka", "s3"}
    for name in stateful:
        assert any(v.split(":")[0] in declared for v in services[name].get("volumes", [])), (
            f"{name} keeps its data in no named volume"
        )


# ---- ports ----------------------------------------------------------------------------


def test_host_ports_match_the_settings_defaults(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    for name, field in PUBLISHED_PORTS.items():
        host_ports = [host_port for _, host_port, _ in published(services[name])]
        assert host_ports == [getattr(defaults, field)], f"{name}: {host_ports}"


def test_ports_are_bound_to_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for host_ip, _, _ in published(service):
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip}"


def test_kafka_advertises_the_address_the_host_connects_to(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    env = {key: resolve(value) for key, value in environment(services["kafka"]).items()}
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    [(_, _, container_port)] = published(services["kafka"])
    external = [name for name, address in advertised.items() if address == defaults.kafka_bootstrap]
    assert external, f"no listener advertised as {defaults.kafka_bootstrap}: {advertised}"
    assert listeners[external[0]].endswith(f":{container_port}")
    internal = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert advertised[internal].startswith("kafka:"), "containers reach the broker by its service name"
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]


# ---- contracts: topics, buckets, databases --------------------------------------------


def test_kafka_init_creates_every_topic_with_its_partitions(services: dict[str, dict[str, Any]]) -> None:
    lines = [line for line in script(services["kafka-init"]).splitlines() if "--topic" in line]
    for topic in contracts.TOPICS:
        matching = [line for line in lines if re.search(rf"--topic[ =]{re.escape(topic.name)}(\s|$)", line)]
        assert len(matching) == 1, f"topic {topic.name} is not created exactly once"
        partitions = re.search(r"--partitions[ =](\d+)", matching[0])
        retention = re.search(r"retention\.ms=(\d+)", matching[0])
        assert partitions and int(partitions[1]) == topic.partitions, matching[0]
        assert retention and int(retention[1]) == topic.retention_ms, matching[0]
    assert "--create" in script(services["kafka-init"])


def test_s3_init_creates_every_bucket(services: dict[str, dict[str, Any]]) -> None:
    text = script(services["s3-init"])
    assert re.search(r"\bmb\b|create-bucket", text), "s3-init creates no bucket"
    for bucket in contracts.BUCKETS:
        assert re.search(rf"(?<![\w.-]){re.escape(bucket)}(?![\w.-])", text), f"bucket {bucket} missing"
    env = environment(services["s3-init"])
    assert resolve(env["AWS_ENDPOINT_URL"]) == "http://s3:8333"


def test_postgres_creates_the_three_databases(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:15"
    assert resolve(environment(postgres)["POSTGRES_DB"]) == defaults.app_db
    assert resolve(environment(postgres)["POSTGRES_USER"]) == defaults.postgres_user
    init_sql = ""
    for entry in postgres.get("volumes", []):
        source, target = entry.split(":")[:2]
        if target.startswith("/docker-entrypoint-initdb.d"):
            init_sql += (ROOT / source).read_text()
    created = set(re.findall(r"CREATE DATABASE\s+(\w+)", init_sql, re.IGNORECASE))
    assert {defaults.airflow_db, defaults.mlflow_db} <= created, created


def test_mlflow_uses_postgres_and_the_object_store(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    mlflow = services["mlflow"]
    assert mlflow["image"].startswith("ghcr.io/mlflow/mlflow:v3.17.2")
    text = script(mlflow)
    env = {key: resolve(value) for key, value in environment(mlflow).items()}
    assert "server" in text
    assert re.search(rf"--artifacts-destination[ =]s3://{contracts.MLFLOW_BUCKET}(\s|$)", text)
    backend = env.get("MLFLOW_BACKEND_STORE_URI") or re.search(r"--backend-store-uri[ =](\S+)", text)[1]
    assert backend.startswith("postgresql") and backend.endswith(f"@postgres:5432/{defaults.mlflow_db}")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://s3:8333"
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])


def test_s3_is_seaweedfs_with_auth(services: dict[str, dict[str, Any]]) -> None:
    s3 = services["s3"]
    assert s3["image"].startswith("chrislusf/seaweedfs")
    text = script(s3)
    assert "-s3" in text and "-s3.config=" in text
    assert '"anonymous"' not in text, "anonymous S3 access must stay off"
    for key in re.findall(r'"(?:accessKey|secretKey)":\s*"([^"]*)"', text):
        assert key.startswith("${"), f"S3 identity key is not taken from the environment: {key}"


# ---- secrets ----------------------------------------------------------------------------


def test_no_literal_secrets(text: str, services: dict[str, dict[str, Any]]) -> None:
    required = re.compile(r"^\$\{\w+:\?[^}]*\}$")
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                assert required.match(value), f"{name}: {key} must come from a required ${{VAR:?...}}"
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                assert required.match(password), f"{name}: {key} embeds a literal password"
    # A default for a secret would be a secret in the repository (`$$` escapes reach the shell).
    for match in INTERPOLATION.finditer(text.replace("$$", "")):
        if SECRET_NAME.search(match["name"]):
            assert match["op"] in (":?", "?"), f"${{{match['name']}}} must be required, not defaulted"


# ---- Airflow ------------------------------------------------------------------------------


def _mapping_value(node: yaml.MappingNode, key: str) -> yaml.Node:
    for key_node, value_node in node.value:
        if key_node.value == key:
            return value_node
    raise KeyError(key)


def test_airflow_services_share_one_anchor(text: str, services: dict[str, dict[str, Any]]) -> None:
    root = yaml.compose(text)
    common = _mapping_value(root, "x-airflow-common")
    service_nodes = _mapping_value(root, "services")
    for name in AIRFLOW_SERVICES:
        node = _mapping_value(service_nodes, name)
        merged = [value for key, value in node.value if key.tag == "tag:yaml.org,2002:merge"]
        assert any(value is common for value in merged), f"{name} does not merge *airflow-common"
    common_env = environment(yaml.safe_load(text)["x-airflow-common"])
    for name in AIRFLOW_SERVICES:
        env = environment(services[name])
        assert env.items() >= common_env.items(), f"{name} overrides the shared Airflow environment"
        assert services[name]["image"] == "apache/airflow:3.3.2"


def test_airflow_runs_local_executor_on_postgres(
    text: str, services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    common = yaml.safe_load(text)["x-airflow-common"]
    env = {key: resolve(value) for key, value in environment(common).items()}
    assert env["AIRFLOW__CORE__EXECUTOR"] == AIRFLOW_EXECUTORS  # LocalExecutor first, as `adfame stack up`
    assert env["AIRFLOW__EDGE__API_ENABLED"] == "true"
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) == defaults.airflow_parallelism
    conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert conn.startswith("postgresql") and conn.endswith(f"@postgres:5432/{defaults.airflow_db}")
    assert "SimpleAuthManager" in env["AIRFLOW__CORE__AUTH_MANAGER"]
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{defaults.airflow_user}:admin"
    mounts = {entry.split(":")[1] for entry in services["airflow-scheduler"]["volumes"]}
    assert {"/opt/airflow/dags", "/opt/airflow/plugins"} <= mounts
    assert "migrate" in script(services["airflow-init"])
    for name, command in {
        "airflow-api-server": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
    }.items():
        assert command in script(services[name]), name


# ---- Spark ----------------------------------------------------------------------------------


def test_nightly_etl_runs_its_spark_jobs_on_the_compose_cluster(
    text: str, services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    """Airflow's tasks name the master the worker registers with; both web UIs on the settings' ports."""
    common = yaml.safe_load(text)["x-airflow-common"]
    master = resolve(environment(common)["ADFAME_SPARK_MASTER"])
    assert master == "spark://spark-master:7077"
    assert "org.apache.spark.deploy.master.Master" in script(services["spark-master"])
    assert services["spark-worker"]["command"][-1] == master
    assert "spark-master" in services["spark-worker"]["depends_on"]
    for name, field in SPARK_SERVICES.items():
        assert [port for _, port, _ in published(services[name])] == [getattr(defaults, field)], name
        assert services[name]["image"] == "adfame:local", f"{name}: executors need the project's libraries"


# ---- AdFame's own services -------------------------------------------------------------


def test_app_slots_build_the_project_image_under_a_profile(services: dict[str, dict[str, Any]]) -> None:
    for name, subcommand in APP_SERVICES.items():
        service = services[name]
        assert service.get("profiles") == ["app"], f"{name} must only start with --profile app"
        build = service["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (ROOT / context / dockerfile).is_file()
        assert script(service).split() == ["adfame", subcommand]
    for name in set(services) - set(APP_SERVICES) - set(GPU_WORKER_SERVICES) - {EDGE_WORKER}:
        assert not services[name].get("profiles"), f"{name} should start with a plain `up`"


def test_training_can_go_to_gpu_workers_on_their_own_queue(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    """LocalExecutor by default; with the gpu profile and CeleryExecutor, training has a worker of its own."""
    for name in GPU_WORKER_SERVICES:
        assert services[name].get("profiles") == ["gpu"], f"{name} must only start with --profile gpu"
    command = services["airflow-gpu-worker"]["command"]
    assert (
        command[:2] == ["celery", "worker"] and command[command.index("--queues") + 1] == defaults.gpu_queue
    )
    devices = services["airflow-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "default" in services["airflow-worker"]["command"]


def test_training_can_go_to_an_edge_worker_with_a_gpu(
    services: dict[str, dict[str, Any]], defaults: Settings
) -> None:
    """Profile edge: an edge worker on the gpu queue with one NVIDIA GPU, reaching the api-server by HTTP."""
    worker = services[EDGE_WORKER]
    assert worker.get("profiles") == ["edge"]
    command = worker["command"]
    assert command[:3] == ["airflow", "edge", "worker"]
    assert command[command.index("--queues") + 1] == defaults.gpu_queue
    assert command[command.index("--edge-hostname") + 1] == defaults.edge_worker_name
    assert defaults.edge_worker_name in " ".join(worker["healthcheck"]["test"])
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["count"] == 1
    env = {key: resolve(value) for key, value in environment(worker).items()}
    assert env["AIRFLOW__CORE__EXECUTOR"] == AIRFLOW_EXECUTORS
    assert env["AIRFLOW__EDGE__API_URL"] == "http://airflow-api-server:8080/edge_worker/v1/rpcapi"
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env  # HTTP only, like a worker on another host
    # The DAGs name the Edge executor only when asked: without a GPU host the training task stays local.
    common = {key: resolve(value) for key, value in environment(services["airflow-scheduler"]).items()}
    assert common["ADFAME_GPU_EXECUTOR"] == ""


def test_dockerfile_installs_the_lock_then_the_project() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    lock = dockerfile.find("requirements.lock")
    project = dockerfile.find("pip install --no-deps")
    assert 0 <= lock < project, "install requirements.lock first, then the project with --no-deps"


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = {
        line.strip().strip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".state", ".git"} <= patterns
    assert patterns & {".env", "**/.env"}
