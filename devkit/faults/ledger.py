"""The shared ledger check of every fault: what the API accepted against what the tables and the bucket hold.

Nothing here trusts the traffic generator's counters: it is given the ids the API accepted (jobs answered
202, picks answered 201) and reads PostgreSQL, the object store and Airflow for each of them.

- **lost**: an accepted request missing, failed or not finished (after a bounded wait), a candidate row or
  object missing, an accepted pick without its selection, a milestone the selections earned without its row,
  trigger or DAG run, a registered version gone;
- **duplicated**: a candidate row or object beyond the request's count, a request the API refused that was
  served anyway (a client that tries again gets it twice), a second selection of a job, a milestone row or
  DAG run beyond one per milestone, a selection stamped with the wrong milestone, a version registered
  without a retrain.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from sqlalchemy import Engine, text

from adfame.contracts import GENERATIONS_TOPIC, PROMPTS_DLQ_TOPIC, SELECTIONS_PER_RETRAIN, VIDEOS_BUCKET
from adfame.messaging import create_consumer
from adfame.settings import Settings
from adfame.storage import ObjectStore
from adfame.waiting import WaitTimeout, wait_for
from inference.feedback import milestone_run_id


@dataclass
class Tally:
    """Lost and duplicated units by kind (``requests``, ``objects``, ...), and what was seen besides."""

    lost: Counter[str] = field(default_factory=Counter)
    duplicated: Counter[str] = field(default_factory=Counter)
    seen: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: Tally) -> Tally:
        self.lost.update(other.lost)
        self.duplicated.update(other.duplicated)
        self.seen.update(other.seen)
        return self

    def details(self) -> dict[str, Any]:
        return {"lost": dict(+self.lost), "duplicated": dict(+self.duplicated), **self.seen}


def settle(engine: Engine, request_ids: Sequence[str], timeout_s: float) -> dict[str, str]:
    """Each accepted request's status once all are finished, or as they are when ``timeout_s`` runs out
    (a request still retried then counts as lost: the wait is bounded)."""

    def statuses() -> dict[str, str]:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select request_id::text, status from generation_requests"
                    " where request_id::text = any(:ids)"
                ),
                {"ids": list(request_ids)},
            ).all()
        return dict(rows)

    def finished(found: dict[str, str]) -> bool:
        return len(found) == len(request_ids) and all(s in ("succeeded", "failed") for s in found.values())

    try:
        return wait_for(statuses, what="the accepted requests finished", timeout_s=timeout_s, done=finished)
    except WaitTimeout as exc:
        return exc.last if isinstance(exc.last, dict) else statuses()


def check_requests(
    engine: Engine, tenant: str, accepted: Sequence[str], num_candidates: int, timeout_s: float
) -> tuple[Tally, dict[str, list[str]]]:
    """Every accepted request once, succeeded, with exactly its candidates; returns each one's object keys."""
    tally = Tally()
    statuses = settle(engine, accepted, timeout_s)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select r.request_id::text, r.status, c.candidate_index, c.object_key"
                " from generation_requests r left join candidates c using (request_id)"
                " where r.tenant = :tenant"
            ),
            {"tenant": tenant},
        ).all()
    candidates: dict[str, list[tuple[int, str]]] = {}
    status_of: dict[str, str] = {}
    for request_id, status, index, key in rows:
        status_of[request_id] = status
        if index is not None:
            candidates.setdefault(request_id, []).append((index, key))
    wanted = set(accepted)
    not_done = [rid for rid in wanted if statuses.get(rid) != "succeeded"]
    tally.lost["requests"] += len(not_done)
    refused_served = [rid for rid, s in status_of.items() if rid not in wanted and s == "succeeded"]
    tally.duplicated["requests"] += len(refused_served)
    keys: dict[str, list[str]] = {}
    for rid in wanted:
        indexes = Counter(index for index, _ in candidates.get(rid, []))
        expected = set(range(num_candidates)) if statuses.get(rid) == "succeeded" else set()
        tally.lost["candidates"] += len(expected - set(indexes))
        tally.duplicated["candidates"] += len(set(indexes) - expected) + sum(n - 1 for n in indexes.values())
        keys[rid] = [key for _, key in candidates.get(rid, [])]
    tally.seen.update(
        accepted=len(wanted),
        statuses=dict(Counter(statuses.get(rid, "missing") for rid in wanted)),
        not_finished=sorted(not_done)[:5],
        refused_but_served=sorted(refused_served)[:5],
        refused=sum(1 for rid in status_of if rid not in wanted),
    )
    return tally, keys


def check_objects(store: ObjectStore, tenant: str, keys: dict[str, list[str]]) -> Tally:
    """Each candidate's object exists, once, and no object under the tenant's prefix belongs to none."""
    tally = Tally()
    stored = Counter(obj.key for obj in store.list(VIDEOS_BUCKET, f"{tenant}/"))
    expected = {key for request_keys in keys.values() for key in request_keys}
    tally.lost["objects"] += len(expected - set(stored))
    # A key of a request that was refused but served is counted with that request, not twice.
    served_elsewhere = {key for key in stored if key.split("/")[1] not in keys}
    tally.duplicated["objects"] += len(set(stored) - expected - served_elsewhere)
    tally.duplicated["objects"] += sum(n - 1 for n in stored.values())
    tally.seen["objects"] = len(stored)
    return tally


def check_selections(engine: Engine, tenant: str, picked: Sequence[str]) -> Tally:
    """Exactly one selection per accepted pick; a selection whose answer was lost is counted apart."""
    tally = Tally()
    with engine.connect() as conn:
        rows = conn.execute(
            text("select request_id::text, count(*) from selections where tenant = :tenant group by 1"),
            {"tenant": tenant},
        ).all()
    per_job = dict(rows)
    tally.lost["selections"] += sum(1 for rid in picked if per_job.get(rid, 0) == 0)
    tally.duplicated["selections"] += sum(n - 1 for n in per_job.values())
    tally.seen["selections"] = sum(per_job.values())
    tally.seen["selections_without_answer"] = len(set(per_job) - set(picked))
    return tally


def check_milestones(
    engine: Engine, dag_runs: Iterable[str] | None, per_retrain: int = SELECTIONS_PER_RETRAIN
) -> Tally:
    """One milestone row per ``per_retrain`` selections of the database, each holding exactly its picks and,
    when ``dag_runs`` (the run ids of the triggered DAG) is given, triggered into exactly one DAG run."""
    tally = Tally()
    with engine.connect() as conn:
        total = conn.execute(text("select count(*) from selections")).scalar_one()
        rows = conn.execute(
            text("select milestone, selection_count, triggered_at is not null from retrain_milestones")
        ).all()
        stamped = dict(
            conn.execute(
                text("select milestone, count(*) from selections where milestone is not null group by 1")
            ).all()
        )
    earned = set(range(1, total // per_retrain + 1))
    recorded = Counter(milestone for milestone, _, _ in rows)
    tally.lost["milestones"] += len(earned - set(recorded))
    tally.duplicated["milestones"] += len(set(recorded) - earned) + sum(n - 1 for n in recorded.values())
    misstamped = sum(abs(stamped.get(m, 0) - per_retrain) for m in earned)
    tally.duplicated["milestone_stamps"] += misstamped
    if dag_runs is not None:
        runs = Counter(dag_runs)
        for milestone, _, triggered in rows:
            found = runs.get(milestone_run_id(milestone), 0)
            tally.lost["dag_runs"] += int(found == 0 or not triggered)
            tally.duplicated["dag_runs"] += max(0, found - 1)
    tally.seen.update(selections_in_database=total, milestones=sorted(recorded))
    return tally


def check_versions(client: Any, model: str, expected: Sequence[str]) -> Tally:
    """The registered model has exactly the ``expected`` versions: no retrain ran, so none came or went."""
    tally = Tally()
    found = {str(v.version) for v in client.search_model_versions(f"name = '{model}'")}
    tally.lost["versions"] += len(set(expected) - found)
    tally.duplicated["versions"] += len(found - set(expected))
    tally.seen["versions"] = sorted(found, key=int)
    return tally


def topic_ends(settings: Settings, topic: str) -> dict[int, int]:
    """Each partition's end offset now: where a later ``read_keys`` starts, to see only what came since."""
    consumer = create_consumer(None, [], settings)  # type: ignore[arg-type]  # kafka-python: no group
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def read_keys(settings: Settings, topic: str, since: dict[int, int] | None = None) -> list[str]:
    """The keys of the topic's messages from ``since`` (default: the start) to its end now, with a consumer
    of no group (nothing committed, no member of anyone's group)."""
    consumer = create_consumer(None, [], settings)  # type: ignore[arg-type]  # kafka-python: no group
    keys: list[str] = []
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, (since or {}).get(tp.partition, 0))
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for records in consumer.poll(timeout_ms=1000).values():
                keys.extend(r.key for r in records if r.key is not None)
    finally:
        consumer.close()
    return keys


def check_dead_letters(settings: Settings, accepted: Sequence[str]) -> Tally:
    """No accepted request on the dead-letter topic: a fault must delay a request, never reject it."""
    tally = Tally()
    tally.lost["dead_letters"] += len(set(accepted) & set(read_keys(settings, PROMPTS_DLQ_TOPIC)))
    tally.seen["dead_letters"] = tally.lost["dead_letters"]
    return tally


def check_events(settings: Settings, succeeded: Sequence[str], since: dict[int, int]) -> Tally:
    """A completion event on adfame.generations for every succeeded request. Events are at least once (a
    redelivered request that had succeeded publishes its event again), so repeats are counted, not faulted."""
    tally = Tally()
    events = Counter(read_keys(settings, GENERATIONS_TOPIC, since))
    tally.lost["events"] += sum(1 for rid in succeeded if events[rid] == 0)
    tally.seen["events_repeated"] = sum(events[rid] - 1 for rid in succeeded if events[rid] > 1)
    return tally
