"""Every service of the stack listens on loopback only, by default and in fact.

The defaults say so (``ADFAME_HOST`` 127.0.0.1, every per-service host following it), and the running
stack shows it: each listening socket of each service's process tree (the ports the stack names and
any other a server opens by itself: gRPC, JMX, worker log servers) is bound to a loopback address.
"""

from __future__ import annotations

import ipaddress
import os

import httpx
import psutil
import pytest

from adfame.settings import ENV_PREFIX, Settings
from adfame.stack.manager import Stack
from inference.api_services import ApiOptions

pytestmark = pytest.mark.integration

CORE = {"postgres", "s3", "kafka", "mlflow", "airflow-api-server"}


def test_defaults_bind_everything_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    defaults = Settings(_env_file=None)
    assert defaults.host == "127.0.0.1"
    hosts = {field: getattr(defaults, field) for field in Settings.model_fields if field.endswith("_host")}
    assert set(hosts.values()) == {"127.0.0.1"}, hosts
    assert ApiOptions.from_settings(defaults).host == "127.0.0.1"


def _loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, or 127.x written as an IPv4-mapped IPv6 address (a JVM's way)."""
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket of the process and its children."""
    root = psutil.Process(pid)
    sockets = []
    for process in (root, *root.children(recursive=True)):
        try:
            connections = process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        sockets += [(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]
    return sockets


def _airflow_log_servers(settings: Settings) -> set[tuple[str, int]]:
    """The one known exception: Airflow's trigger log server binds every interface, hard-coded
    (``host=""`` in airflow/utils/serve_logs/core.py, no setting); it answers only requests signed with
    the JWT secret (checked below). The scheduler starts with ``--skip-serve-logs`` (its tasks' logs are
    read from the shared folder); a deferred task's trigger log is read only through the triggerer's
    server, so it stays. docs/security.md says why."""
    return {("airflow-triggerer", settings.airflow_triggerer_log_port)}


def test_every_running_service_listens_on_loopback_only(settings: Settings) -> None:
    stack = Stack(settings)
    running = {row.name: row.pid for row in stack.status() if row.pid is not None}
    assert set(running) >= CORE, f"the suite's stack should be up: {sorted(running)}"
    checked: dict[str, list[tuple[str, int]]] = {}
    for service in stack.select(None):
        if service.name not in running:
            continue
        sockets = _listening(running[service.name])
        exposed = [
            (ip, port)
            for ip, port in sockets
            if not _loopback(ip) and (service.name, port) not in _airflow_log_servers(settings)
        ]
        assert not exposed, f"{service.name} listens beyond loopback: {exposed}"
        listened = {port for _, port in sockets}
        assert set(service.ports()) <= listened, f"{service.name}: {service.ports()} not all open: {sockets}"
        checked[service.name] = sockets
    assert sum(len(sockets) for sockets in checked.values()) >= len(CORE)


def test_airflow_log_servers_refuse_unsigned_requests(settings: Settings) -> None:
    for _service, port in sorted(_airflow_log_servers(settings)):
        response = httpx.get(
            f"http://127.0.0.1:{port}/log/dag_id=x/run_id=y/task_id=z/attempt=1.log", timeout=10
        )
        assert response.status_code == 403, (port, response.status_code)
