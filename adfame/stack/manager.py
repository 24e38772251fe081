"""`adfame stack up | down | status | logs | run`: start only what is not running, stop what was started."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from adfame import health
from adfame.health import Probe
from adfame.settings import Settings, ensure_secrets
from adfame.stack import StackError
from adfame.stack.process import port_holder, spawn, stop, tail
from adfame.stack.services import SERVICE_CLASSES, SERVICE_GROUPS, Service
from adfame.waiting import WaitTimeout, wait_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # healthy | unhealthy | stopped
    pid: int | None
    url: str
    detail: str

    @property
    def healthy(self) -> bool:
        """Optional services that are off do not make the stack unhealthy."""
        return self.state in ("healthy", "off")


class Stack:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.services: dict[str, Service] = {cls.name: cls(settings) for cls in SERVICE_CLASSES}

    # ---- selection ----------------------------------------------------------
    def select(self, names: Iterable[str] | None) -> list[Service]:
        """The named services and what they need, in start order; the platform when ``names`` is empty."""
        if not names:
            return [svc for svc in self.services.values() if not svc.optional]
        names = self.expand(names)
        wanted: set[str] = set()

        def add(name: str) -> None:
            if name not in wanted:
                wanted.add(name)
                for dependency in self.services[name].requires:
                    add(dependency)

        for name in names:
            add(name)
        return [svc for name, svc in self.services.items() if name in wanted]

    def expand(self, names: Iterable[str]) -> list[str]:
        """Service names with each group (``spark``) replaced by its services; an unknown name is an error."""
        expanded = [member for name in names for member in SERVICE_GROUPS.get(name, (name,))]
        unknown = [n for n in expanded if n not in self.services]
        if unknown:
            known = ", ".join([*self.services, *SERVICE_GROUPS])
            raise StackError(f"unknown service {', '.join(unknown)}; known: {known}")
        return expanded

    # ---- commands -------------------------------------------------------------
    def install(self, names: Iterable[str] | None = None) -> None:
        for svc in self.select(names):
            svc.install(install_missing=True)

    def up(self, names: Iterable[str] | None = None, install_missing: bool = False) -> list[str]:
        """Start each selected service that is not running; returns the names started now."""
        ensure_secrets(self.settings.state_dir)
        started: list[str] = []
        for svc in self.select(names):
            proc = svc.pidfile.process()
            if proc is not None:
                self._wait_healthy(svc, proc)
                log.info("%-22s already running (pid %d)", svc.name, proc.pid)
            else:
                begin = time.monotonic()
                self._start(svc, install_missing)
                started.append(svc.name)
                log.info("%-22s started in %.1fs  %s", svc.name, time.monotonic() - begin, svc.url())
            svc.converge()
        return started

    def _start(self, svc: Service, install_missing: bool) -> None:
        for port in svc.ports():
            if health.listening(self.settings.host, port):
                raise StackError(
                    f"{svc.name} cannot start: port {port} on {self.settings.host} is already in use by "
                    f"{port_holder(port)}. Stop that process or choose another port in .env "
                    "(see .env.example)."
                )
        svc.install(install_missing)
        svc.dir.mkdir(parents=True, exist_ok=True)
        svc.prepare()
        proc = spawn(
            svc.command(), log_path=svc.log_path, env=svc.environment(), cwd=svc.dir, user=svc.run_as
        )
        svc.pidfile.write(proc)
        self._wait_healthy(svc, proc)

    def _wait_healthy(self, svc: Service, proc: psutil.Process) -> None:
        """Probe until healthy; a process that exits while starting fails at once, with its log's tail."""

        def probe_while_alive() -> Probe:
            probe = svc.probe()
            if not probe.ok and (not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE):
                svc.pidfile.clear()
                raise StackError(
                    f"{svc.name} exited while starting ({probe.detail}); its log is "
                    f"{svc.log_path}:\n{tail(svc.log_path)}"
                )
            return probe

        timeout_s = self.settings.start_timeout
        try:
            wait_for(
                probe_while_alive,
                what=f"{svc.name} healthy",
                timeout_s=timeout_s,
                done=lambda probe: probe.ok,
            )
        except WaitTimeout as timeout:
            raise StackError(
                f"{svc.name} did not become healthy within {timeout_s:.0f}s "
                f"({timeout.last.detail}); its log is {svc.log_path}:\n{tail(svc.log_path)}"
            ) from None

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop the selected services (all by default), dependants first."""
        named = set(self.expand(names)) if names else set(self.services)
        chosen = [svc for svc in self.services.values() if svc.name in named]  # in start order
        stopped = []
        for svc in reversed(chosen):
            proc = svc.pidfile.process()
            if proc is not None:
                stop(proc, svc.stop_signal)
                stopped.append(svc.name)
                log.info("%-22s stopped", svc.name)
            svc.pidfile.clear()
        return stopped

    def restart(self, names: Iterable[str]) -> float:
        """Stop the named services and start them again, leaving the services that use them running (what
        a server restart or a fault test does to them); returns the seconds from stopping to healthy."""
        names = list(names)
        if not names:
            raise StackError("name the services to restart; known: " + ", ".join(self.services))
        self.select(names)  # unknown names fail here, before anything stops
        began = time.monotonic()
        self.down(names)
        self.up(names)
        return time.monotonic() - began

    def status(self) -> list[ServiceStatus]:
        rows = []
        for svc in self.services.values():
            proc = svc.pidfile.process()
            if proc is None and svc.optional:
                rows.append(
                    ServiceStatus(
                        svc.name, "off", None, svc.url(), f"start with `adfame stack up {svc.name}`"
                    )
                )
                continue
            if proc is None:
                rows.append(ServiceStatus(svc.name, "stopped", None, svc.url(), "not running"))
                continue
            probe = svc.probe()
            state = "healthy" if probe.ok else "unhealthy"
            rows.append(ServiceStatus(svc.name, state, proc.pid, svc.url(), probe.detail))
        return rows

    def log_path(self, name: str) -> Path:
        if name not in self.services:
            raise StackError(f"unknown service {name}; known: {', '.join(self.services)}")
        return self.services[name].log_path

    def run(self, command: Sequence[str], install_missing: bool = False) -> int:
        """Bring the stack up, run ``command``, then stop only what this call started."""
        started = self.up(install_missing=install_missing)
        try:
            return subprocess.call(list(command))
        finally:
            if started:
                log.info("stopping what this run started: %s", ", ".join(started))
                self.down(started)


def format_status(rows: list[ServiceStatus]) -> str:
    lines = [f"{'SERVICE':<22} {'STATE':<10} {'PID':>7}  {'URL':<36} DETAIL"]
    for r in rows:
        lines.append(f"{r.name:<22} {r.state:<10} {r.pid or '-':>7}  {r.url:<36} {r.detail}")
    return "\n".join(lines)


def follow(path: Path, lines: int) -> None:
    """Print the last lines of a log, then what is appended, until interrupted."""
    print(tail(path, lines))
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        try:
            while True:
                chunk = handle.read()
                if chunk:
                    sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
                else:
                    time.sleep(0.5)
        except KeyboardInterrupt:
            pass
