"""What a running stack holds, read without writing: `python -m devkit.stack_snapshot > before.json`.

It proves that something ran beside a stack without touching it (`make test` beside `make demo`):
take a snapshot before and after and compare them (`--compare before.json`). It reads the stack
named by the current settings: services and their pids, DAG pause states and run counts, Kafka
topics with their end offsets and the workers' committed offsets, row counts of every table of the
app database, object counts and bytes per bucket, and registered models with versions and aliases.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from adfame.settings import Settings, get_settings


def services(settings: Settings) -> dict[str, Any]:
    from adfame.stack.manager import Stack

    return {row.name: {"state": row.state, "pid": row.pid} for row in Stack(settings).status()}


def dags(settings: Settings) -> dict[str, Any]:
    from adfame.airflow_client import AirflowClient

    with AirflowClient(settings) as client:
        listed = client.request("GET", "/api/v2/dags", params={"limit": 100}).json()["dags"]
        return {
            dag["dag_id"]: {"paused": dag["is_paused"], "runs": len(client.list_dag_runs(dag["dag_id"]))}
            for dag in listed
        }


def topics(settings: Settings) -> dict[str, Any]:
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.errors import CoordinatorNotAvailableError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        names = sorted(name for name in admin.list_topics() if not name.startswith("__"))
        partitions = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()]
        ends = consumer.end_offsets(partitions)
        try:
            committed = admin.list_group_offsets(settings.worker_group).get(settings.worker_group, {})
        except CoordinatorNotAvailableError:  # no group has ever committed on this broker
            committed = {}
        return {
            "end_offsets": {f"{tp.topic}[{tp.partition}]": ends[tp] for tp in partitions},
            "worker_offsets": {f"{tp.topic}[{tp.partition}]": meta.offset for tp, meta in committed.items()},
        }
    finally:
        consumer.close()
        admin.close()


def tables(settings: Settings) -> dict[str, int]:
    from sqlalchemy import text

    from adfame.db import create_engine_for

    engine = create_engine_for(settings)
    try:
        with engine.connect() as conn:
            names = conn.execute(
                text("select tablename from pg_tables where schemaname = 'public' order by tablename")
            ).scalars()
            return {name: conn.execute(text(f'select count(*) from "{name}"')).scalar_one() for name in names}
    finally:
        engine.dispose()


def buckets(settings: Settings) -> dict[str, Any]:
    from adfame.storage import ObjectStore

    store = ObjectStore(settings)
    result = {}
    for bucket in sorted(store.list_buckets()):
        objects = store.list(bucket)
        result[bucket] = {"objects": len(objects), "bytes": sum(o.size for o in objects)}
    return result


def models(settings: Settings) -> dict[str, Any]:
    from adfame.mlflow_setup import configure_mlflow

    client = configure_mlflow(settings)
    return {
        model.name: {
            "versions": sorted(
                int(v.version) for v in client.search_model_versions(f"name = '{model.name}'")
            ),
            "aliases": dict(sorted(model.aliases.items())),
        }
        for model in client.search_registered_models()
    }


SECTIONS = {
    "services": services,
    "dags": dags,
    "topics": topics,
    "tables": tables,
    "buckets": buckets,
    "models": models,
}


def snapshot(settings: Settings) -> dict[str, Any]:
    """Every section; a section whose service does not answer says why instead."""
    result: dict[str, Any] = {}
    for name, read in SECTIONS.items():
        try:
            result[name] = read(settings)
        except Exception as exc:  # a snapshot reports what it could not read, and reads on
            result[name] = {"unreadable": f"{type(exc).__name__}: {exc}"}
    return result


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    """Every leaf that differs, as ``path: before -> after``."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after), key=str):
            found += differences(before.get(key), after.get(key), f"{path}.{key}" if path else str(key))
        return found
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="a snapshot taken earlier: print what changed since")
    args = parser.parse_args(argv)
    now = snapshot(get_settings())
    if args.compare is None:
        json.dump(now, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    changed = differences(json.loads(args.compare.read_text()), json.loads(json.dumps(now)))
    print("\n".join(changed) if changed else "unchanged")
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
