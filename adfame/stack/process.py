"""Processes of the stack: background servers with pid files (spawn, find, stop), who holds a port, and
one-off commands (initdb, a build) that must succeed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from adfame.stack import StackError


@dataclass(frozen=True)
class PidFile:
    path: Path

    def write(self, proc: psutil.Process) -> None:
        self.path.write_text(json.dumps({"pid": proc.pid, "create_time": proc.create_time()}))

    def process(self) -> psutil.Process | None:
        """The live process this file names, or None (gone, zombie, or the pid was reused)."""
        try:
            record = json.loads(self.path.read_text())
            proc = psutil.Process(record["pid"])
            if abs(proc.create_time() - record["create_time"]) > 0.01:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (FileNotFoundError, ValueError, KeyError, psutil.Error):
            return None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def spawn(
    command: list[str], *, log_path: Path, env: dict[str, str], cwd: Path, user: str | None = None
) -> psutil.Process:
    """Start a detached process (own session) whose output goes to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(command)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            user=user,
            group=user,
            close_fds=True,
        )
    return psutil.Process(proc.pid)


def stop(proc: psutil.Process, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
    """Signal the process group, wait, then kill whatever is left."""
    try:
        group = [proc, *proc.children(recursive=True)]
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, psutil.NoSuchProcess):
        return
    except PermissionError:
        proc.send_signal(sig)
    _, alive = psutil.wait_procs(group, timeout=timeout_s)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()
    psutil.wait_procs(alive, timeout=5)


def run_checked(command: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a one-off command to the end; a failure is a StackError carrying the tail of its output."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise StackError(
            f"{what} failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-2000:]}"
        )
    return result


def port_holder(port: int) -> str:
    """A short description of the process listening on ``port``, if it can be seen."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline())[:80]})"
    except (psutil.Error, PermissionError):
        pass
    return "another process"


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    if not path.exists():
        return "(no log yet)"
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])
