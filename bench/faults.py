"""Every fault scenario on a real stack, with more traffic than the tests: the fault table of issue 12.

    set -a; . tests/stack.env; set +a   # or another stack profile
    python -m bench.faults [--only s3-outage,kafka-restart] [--scale 2] [--outage-s 30] [--json faults.json]

Against the stack the environment names (the suite's: ``tests/stack.env``, sourced from the project root;
the stack must load the ``feedback_trigger_probe`` DAG of tests/dags/, which milestones trigger here instead
of a real retrain).
It starts what of that stack is not running, opens one ``devkit.faults.rig.FaultRig`` (a database of its
own, an API and two workers) and runs each scenario of ``devkit.faults.scenarios`` in turn with ``--scale``
times the tests' traffic, then prints one row per fault: the requests (or milestones) in flight when it
struck, lost, duplicated, and seconds from the end of the fault to the first unit finished after it. The
ledger behind lost and duplicated is read from PostgreSQL, the object store and Kafka, never from the
traffic generator's counters. The last fault, ``training-killed`` (``devkit.fault_training``), runs a real
retrain of the stack's registered model and SIGKILLs its training task mid-run. Exit status 1 when any
fault lost or duplicated anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from devkit.fault_report import FaultReport


def plans(scale: int, outage_s: float) -> dict[str, Callable[..., FaultReport]]:
    """Each scenario with ``scale`` times the tests' visits, four times as many at once and sent faster than
    two workers serve them (so requests queue up), the fault injected once a third of them were accepted."""
    from devkit.fault_training import training_task_killed
    from devkit.faults import scenarios as s

    def load(count: int, rate_per_s: float) -> s.Load:
        return s.Load(count * scale, rate_per_s, inject_after=max(1, count * scale // 3), concurrency=8)

    return {
        "worker-sigkill": lambda rig: s.sigkill_storm(rig, load(6, 2.0), kills=3 * scale),
        "kafka-restart": lambda rig: s.kafka_restart(rig, load(6, 2.0)),
        "s3-outage": lambda rig: s.object_store_outage(rig, load(6, 1.0), outage_s=outage_s),
        "postgres-restart": lambda rig: s.postgres_restart(rig, load(6, 2.0)),
        "airflow-milestone": lambda rig: s.airflow_outage_across_milestone(rig, s.Load(3 * scale, 1.0)),
        "mlflow-switch": lambda rig: s.mlflow_outage_during_switch(rig, s.Load(6 * scale, 1.0)),
        # A retrain of the stack's registered model (on its edge worker), its training task SIGKILLed mid-run.
        "training-killed": lambda rig: training_task_killed(rig.settings),
    }


def format_table(reports: list[FaultReport]) -> str:
    header = f"{'fault':<18} {'unit':<10} {'accepted':>8} {'in flight':>9} {'lost':>5} {'duplicated':>10}"
    header += f" {'recover s':>9}"
    rows = [
        f"{r.fault:<18} {r.unit:<10} {r.accepted:>8} {r.in_flight:>9} {r.lost:>5} {r.duplicated:>10}"
        f" {r.recovery_s:>9.2f}"
        for r in reports
    ]
    return "\n".join([header, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated faults (default: all): " + ", ".join(plans(1, 30)))
    parser.add_argument("--scale", type=int, default=2, help="times the tests' traffic (default 2)")
    parser.add_argument("--outage-s", type=float, default=30.0, help="seconds the object store stays down")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--logs", type=Path, help="folder for the API's and workers' logs (default: a new one)"
    )
    parser.add_argument("--json", type=Path, help="also write the reports (details included) here")
    args = parser.parse_args(argv)
    chosen = plans(args.scale, args.outage_s)
    names = args.only.split(",") if args.only else list(chosen)
    unknown = [n for n in names if n not in chosen]
    if unknown:
        parser.error(f"unknown fault {', '.join(unknown)}; known: {', '.join(chosen)}")

    from adfame.settings import get_settings
    from devkit.faults.rig import FaultRig, RigOptions

    reports: list[FaultReport] = []
    began = time.monotonic()
    logs = args.logs or Path(tempfile.mkdtemp(prefix="bench-faults-"))
    print(f"logs of the API and the workers: {logs}", file=sys.stderr)
    with FaultRig(get_settings(), logs, RigOptions(workers=args.workers)) as rig:
        for name in names:
            print(f"-- {name}", file=sys.stderr, flush=True)
            reports.append(chosen[name](rig))
    print(format_table(reports))
    seconds = time.monotonic() - began
    print(f"({len(reports)} faults in {seconds:.0f}s, {args.workers} workers, scale {args.scale})")
    if args.json:
        args.json.write_text(json.dumps([r.as_row() for r in reports], indent=2, default=str))
    return 0 if all(r.clean for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
