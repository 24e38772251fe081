"""The canary walk, measured: canary_rollout takes a challenger 5 -> 25 -> 50 -> 100 % through real workers.

    python -m bench.canary [--window-s 90] [--rate 2] [--workers 1] [--inference-steps 1]

Against the stack the environment names (the test stack: ``set -a; . tests/stack.env; set +a``). It
registers a model of its own with two versions carrying the same LoRA (PEFT's initialisation, B = 0: the
bench measures routing and the DAG, not quality), makes one the champion, starts workers in a consumer
group of their own (one denoising step by default), submits small requests at ``--rate`` a second for as
long as the DAG runs, and triggers ``canary_rollout`` with ``--window-s`` windows. Each step's window is
judged by the DAG; the bench prints, per step, the requests each route served in that window (the judge's
counts) and the challenger's share against the weight, and whether it is within 5 points over at least
100 requests.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import TopicPartition

from adfame import db
from adfame.airflow_client import AirflowClient
from adfame.contracts import CANARY_DAG_ID, CHAMPION_ALIAS, PROMPTS_TOPIC
from adfame.messaging import create_consumer
from adfame.mlflow_setup import configure_mlflow
from adfame.settings import Settings, get_settings
from adfame.waiting import wait_for
from devkit.background_traffic import BackgroundTraffic
from devkit.registry_versions import register_identity_versions

ADFAME = str(Path(sys.executable).parent / "adfame")
STEPS = [5, 25, 50, 100]
# Small requests, so that a window of a minute or two holds 100+ of them on a shared two-core machine.
SMALL = {"num_candidates": 1, "num_frames": 2, "height": 16, "width": 16}
TOLERANCE = 5.0
MIN_REQUESTS = 100


def register_versions(settings: Settings, client: Any) -> tuple[str, str, str]:
    """(model name, champion version, challenger version), both versions the same LoRA."""
    name = f"adfame-bench-canary-{uuid.uuid4().hex[:8]}"
    champion, challenger = register_identity_versions(
        settings, client, name, experiment="adfame-bench-canary"
    )
    client.set_registered_model_alias(name, CHAMPION_ALIAS, champion)
    return name, champion, challenger


def start_workers(
    settings: Settings, model: str, count: int, steps: int, log_dir: Path
) -> list[subprocess.Popen]:
    """``count`` workers (``steps`` denoising steps each) in a group of their own that starts at the end
    of the prompts topic."""
    group = f"bench-canary-{uuid.uuid4().hex[:8]}"
    consumer = create_consumer(group, [], settings)
    partitions = [TopicPartition(PROMPTS_TOPIC, p) for p in consumer.partitions_for_topic(PROMPTS_TOPIC)]
    consumer.assign(partitions)
    consumer.seek_to_end(*partitions)
    for partition in partitions:
        consumer.position(partition)
    consumer.commit()
    consumer.close()
    env = {**os.environ, "ADFAME_REGISTERED_MODEL": model, "ADFAME_WORKER_GROUP": group}
    env["ADFAME_INFERENCE_STEPS"] = str(steps)
    if count > 1:  # split the cores, or the workers slow each other down
        env["ADFAME_INFERENCE_THREADS"] = str(max(1, (os.cpu_count() or 2) // count))
    workers = []
    for index in range(count):
        with (log_dir / f"worker-{index}.log").open("w") as log:
            workers.append(
                subprocess.Popen(
                    [ADFAME, "worker"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            )
    return workers


def step_windows(airflow: AirflowClient, run_id: str) -> list[dict[str, Any]]:
    """Each step task's XCom: the judge's figures of its window."""
    path = f"/api/v2/dags/{CANARY_DAG_ID}/dagRuns/{run_id}/taskInstances/step_{{}}/xcomEntries/return_value"
    return [airflow.request("GET", path.format(i)).json()["value"] for i in range(1, len(STEPS) + 1)]


def report(windows: list[dict[str, Any]]) -> bool:
    """Print the shares; True when every step is within the tolerance over enough requests."""
    header = f"{'weight':>6} {'requests':>8} {'challenger':>10} {'share':>7} {'off by':>7}"
    print(f"{header}  within {TOLERANCE:g} points")
    ok = True
    for window in windows:
        served = window["challenger_requests"] + window["champion_requests"]
        share, weight = window["challenger_share"] or 0.0, window["weight"]
        good = served >= MIN_REQUESTS and abs(share - weight) <= TOLERANCE
        ok &= good
        verdict = ("yes" if good else "NO") + ("" if served >= MIN_REQUESTS else " (too few requests)")
        print(
            f"{weight:>5}% {served:>8} {window['challenger_requests']:>10} {share:>6.1f}%"
            f" {share - weight:>+6.1f}  {verdict}"
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-s", type=float, default=90.0, help="seconds per step (>= 100 requests)")
    parser.add_argument("--rate", type=float, default=2.0, help="requests submitted per second")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--inference-steps", type=int, default=1, help="denoising steps per video (routing needs no quality)"
    )
    args = parser.parse_args(argv)
    settings, engine = get_settings(), db.engine()
    db.upgrade(engine)
    client = configure_mlflow(settings)
    name, champion, challenger = register_versions(settings, client)
    print(f"model {name}: champion {champion}, challenger {challenger}; windows of {args.window_s:g}s")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-canary-"))
    workers = start_workers(settings, name, args.workers, args.inference_steps, log_dir)
    conf = {"model_name": name, "model_version": challenger, "steps": STEPS, "window_s": args.window_s}
    conf |= {"min_requests": 3, "max_windows": 1, "source": "bench"}
    try:
        with (
            AirflowClient(settings) as airflow,
            BackgroundTraffic(settings, engine, "bench-canary", args.rate, **SMALL) as traffic,
        ):
            was_paused = airflow.wait_for_dag(CANARY_DAG_ID)["is_paused"]
            wait_for(lambda: len(traffic.submitted) > 3, what="traffic flowing", timeout_s=60)
            started = time.monotonic()
            run = airflow.run_dag(CANARY_DAG_ID, conf, timeout_s=len(STEPS) * args.window_s * 3 + 300)
            print(f"run {run.run_id}: {run.state} in {time.monotonic() - started:.0f}s")
            windows = step_windows(airflow, run.run_id) if run.succeeded else []
            airflow.set_paused(CANARY_DAG_ID, was_paused)
        submitted = f"submitted {len(traffic.submitted)} requests ({traffic.failures} failed to submit)"
        print(f"{submitted}; worker logs in {log_dir}")
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    if not run.succeeded:
        print({ti["task_id"]: ti["state"] for ti in run.task_instances})
        return 1
    aliases = client.get_registered_model(name).aliases
    print(f"champion after the walk: version {aliases.get(CHAMPION_ALIAS)} (challenger was {challenger})")
    return 0 if report(windows) and aliases.get(CHAMPION_ALIAS) == challenger else 1


if __name__ == "__main__":
    sys.exit(main())
