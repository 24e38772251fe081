"""`adfame`: the command people type. Stage imports stay inside the commands so `adfame --help` is fast."""

from __future__ import annotations

import argparse
import logging
import sys

# The stack's non-optional services in start order, spelled out rather than read from adfame.stack.services
# so that `adfame --help` imports nothing heavy.
PLATFORM_SERVICES = (
    "postgres",
    "s3",
    "kafka",
    "mlflow",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-edge-worker",
)
OPTIONAL_SERVICES = ("worker", "api", "dashboard", "spark (spark-master, spark-worker)")
SERVICES_HELP = ", ".join(PLATFORM_SERVICES) + "; started only when named: " + ", ".join(OPTIONAL_SERVICES)


def _stack():
    from adfame.settings import get_settings
    from adfame.stack.manager import Stack

    return Stack(get_settings())


def cmd_stack_install(args: argparse.Namespace) -> int:
    _stack().install(args.services)
    if args.browser:
        from adfame.stack.install import ensure_chromium

        print(f"browser for the page tests: {ensure_chromium(install_missing=True)}")
    print("everything the stack needs is installed")
    return 0


def cmd_stack_up(args: argparse.Namespace) -> int:
    from adfame.stack.manager import format_status

    stack = _stack()
    started = stack.up(args.services, install_missing=args.install)
    print(f"started: {', '.join(started) if started else 'nothing (all running)'}")
    print(format_status(stack.status()))
    return 0


def cmd_stack_down(args: argparse.Namespace) -> int:
    stopped = _stack().down(args.services)
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def cmd_stack_restart(args: argparse.Namespace) -> int:
    seconds = _stack().restart(args.services)
    print(f"restarted: {', '.join(args.services)}; healthy again {seconds:.1f}s after stopping")
    return 0


def cmd_stack_status(args: argparse.Namespace) -> int:
    from adfame.stack.manager import format_status
    from adfame.stack.shell_env import login_guide

    stack = _stack()
    rows = stack.status()
    print(format_status(rows))
    print(f"\n{login_guide(stack.settings)}")
    return 0 if all(r.healthy for r in rows) else 1


def cmd_stack_logs(args: argparse.Namespace) -> int:
    from adfame.stack.manager import follow
    from adfame.stack.process import tail

    stack = _stack()
    names = [args.service] if args.service else list(stack.services)
    if args.follow:
        follow(stack.log_path(names[0]), args.lines)
        return 0
    for name in names:
        print(f"==> {stack.log_path(name)} <==")
        print(tail(stack.log_path(name), args.lines))
    return 0


def cmd_stack_run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise SystemExit("adfame stack run: give a command after --, e.g. adfame stack run -- pytest")
    return _stack().run(command, install_missing=args.install)


def cmd_env(args: argparse.Namespace) -> int:
    from adfame.settings import get_settings
    from adfame.stack.shell_env import render_exports, stack_environment

    print(render_exports(stack_environment(get_settings())))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from adfame import db

    applied = db.upgrade(db.engine())
    version = db.current_version(db.engine())
    if applied:
        print(f"applied: {', '.join(applied)}; now at version {version}")
    else:
        print(f"database schema is up to date (version {version})")
    return 0


def cmd_dags_trigger(args: argparse.Namespace) -> int:
    import json

    from adfame.airflow_client import AirflowClient

    conf = json.loads(args.conf) if args.conf else {}
    with AirflowClient() as client:

        def announce(run_id: str) -> None:
            print(f"triggered {args.dag_id} run {run_id}: {client.settings.airflow_url}/dags/{args.dag_id}")

        if not args.wait:
            announce(client.start_dag_run(args.dag_id, conf))
            return 0
        result = client.run_dag(args.dag_id, conf, timeout_s=args.timeout, on_start=announce)
        for ti in result.task_instances:
            index = ti.get("map_index", -1)
            print(f"  {ti['task_id']}{f'[{index}]' if index >= 0 else ''}: {ti['state']}")
            if ti["state"] == "failed":
                failure = client.task_failure(args.dag_id, result.run_id, ti)
                print(f"    error (try {failure.try_number}): {failure.error}")
                print(f"    log: {', '.join(failure.log_sources) or 'not found'}")
    print(f"{args.dag_id} run {result.run_id}: {result.state}")
    return 0 if result.succeeded else 1


def cmd_etl_demo(args: argparse.Namespace) -> int:
    from adfame.settings import get_settings
    from devkit.etl_demo import run_demo

    result = run_demo(rows=args.rows, clips=args.clips, parts=args.parts, snapshot_id=args.snapshot_id)
    print(f"nightly_etl run {result['run_id']}: {result['state']}")
    if result["state"] == "success":
        print(
            f"snapshot {args.snapshot_id}: s3://adfame-datasets/snapshots/{args.snapshot_id}/manifest.json, "
            f"rows in {get_settings().app_db}.dataset_clips"
        )
    return 0 if result["state"] == "success" else 1


def cmd_model_init(args: argparse.Namespace) -> int:
    from adfame.settings import get_settings
    from inference.model import init_default_model

    print(f"default model: {init_default_model(get_settings())}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from adfame.settings import get_settings
    from inference.worker import run_worker

    handled = run_worker(get_settings(), max_messages=args.max_messages)
    print(f"worker stopped after {handled} messages")
    return 0


def _print_job(job, store) -> None:
    from adfame.contracts import VIDEOS_BUCKET

    print(f"request {job.request_id}: {job.status} (model {job.model_version}, route {job.route})")
    if job.error:
        print(f"  error: {job.error}")
    for c in job.candidates:
        print(f"  [{c.index}] {c.variation_prompt}\n      {store.presign_get(VIDEOS_BUCKET, c.object_key)}")


def cmd_generate(args: argparse.Namespace) -> int:
    from adfame.db import engine
    from adfame.messaging import create_producer
    from adfame.schemas import PromptRequest
    from adfame.storage import ObjectStore
    from inference.jobs import submit, wait_for_job

    fields = {
        "num_candidates": args.candidates,
        "num_frames": args.frames,
        "fps": args.fps,
        "height": args.height,
        "width": args.width,
        "seed": args.seed,
    }
    request = PromptRequest(tenant=args.tenant, prompt=args.prompt, **{k: v for k, v in fields.items() if v})
    producer = create_producer()
    submit(request, engine=engine(), producer=producer)
    producer.close()
    print(f"submitted request {request.request_id} for {request.tenant}")
    if not args.wait:
        return 0
    job = wait_for_job(engine(), request.request_id, timeout_s=args.timeout)
    _print_job(job, ObjectStore())
    return 0 if job.status == "succeeded" else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.select:
        return _simulate_selections(args)
    if args.taste:
        print("adfame: --taste judges candidates only with --select", file=sys.stderr)
        return 2
    from adfame.db import engine
    from adfame.messaging import create_producer
    from inference.jobs import submit
    from inference.simulator import simulate

    producer = create_producer()
    result = simulate(lambda r: submit(r, engine=engine(), producer=producer), _traffic(args))
    producer.close()
    print(f"submitted {result.submitted} requests in {result.seconds:.1f}s ({result.failed} failed)")
    return 0 if result.failed == 0 else 1


def _traffic(args: argparse.Namespace):  # -> inference.simulator.Traffic
    """The traffic ``adfame simulate`` asked for, with prompts from the curated pool."""
    from adfame.db import engine
    from adfame.storage import ObjectStore
    from inference.simulator import Traffic, load_prompt_pool

    return Traffic(
        prompts=load_prompt_pool(engine(), ObjectStore()),
        count=args.count,
        rate_per_s=args.rate,
        concurrency=args.concurrency,
        tenants=args.tenants.split(","),
        seed=args.seed,
    )


def _simulate_selections(args: argparse.Namespace) -> int:
    """A simulated marketer with a taste: prompts through the REST API, picks posted back to it."""
    from adfame.db import engine
    from adfame.settings import get_settings
    from inference.auth import create_api_key, revoke_api_key
    from inference.simulator import RestMarketer, simulate_selections
    from inference.tastes import parse_taste

    if not args.taste:
        print("adfame: --select needs a --taste to pick by, e.g. --taste rgb:255,0,0", file=sys.stderr)
        return 2
    taste = parse_taste(args.taste)
    tenants = args.tenants.split(",")
    created = {} if args.api_key else {tenant: create_api_key(engine(), tenant) for tenant in tenants}
    keys = {tenant: args.api_key for tenant in tenants} if args.api_key else created
    api_url = args.api_url or get_settings().api_url
    marketer = RestMarketer(api_url, keys, taste, p_best=args.p_best, job_timeout_s=args.job_timeout)
    try:
        result = simulate_selections(marketer, _traffic(args))
    finally:
        marketer.close()
        for key in created.values():  # the keys this run made for itself end with it
            revoke_api_key(engine(), key)
    milestones = ", ".join(map(str, result.milestones)) or "none"
    print(
        f"submitted {result.submitted}, selected {result.selected}, failed {result.failed}"
        f" in {result.seconds:.1f}s (taste {taste.name}, p_best {args.p_best});"
        f" milestones reached: {milestones}"
    )
    return 0 if result.failed == 0 else 1


def cmd_export(args: argparse.Namespace) -> int:
    from training.export import export_milestone

    manifest = export_milestone(
        args.milestone, heldout_share=args.heldout_share, curated_sample=args.curated_sample
    )
    print(manifest.uri)
    return 0


def _train_config(args: argparse.Namespace):  # -> training.config.TrainConfig
    """The run config: a file (``--config``) or the defaults, with the flags given on top."""
    from pathlib import Path

    from training.config import TrainConfig

    base = TrainConfig.from_file(Path(args.config)) if args.config else TrainConfig()
    flags = ("objective", "steps", "learning_rate", "rank", "beta", "seed", "batch_size", "checkpoint_every")
    overrides = {name: value for name in flags if (value := getattr(args, name)) is not None}
    return TrainConfig.model_validate(base.model_dump() | overrides)


def cmd_retrain_show(args: argparse.Namespace) -> int:
    from adfame.db import engine
    from adfame.mlflow_setup import configure_mlflow
    from adfame.settings import get_settings
    from training.milestone_report import MilestoneUnknown, format_report, milestone_report

    settings = get_settings()
    try:
        report = milestone_report(
            settings, engine(), configure_mlflow(settings), args.milestone, wait_s=args.wait
        )
    except MilestoneUnknown as exc:
        print(f"adfame: {exc}", file=sys.stderr)
        return 1
    print(format_report(report, settings))
    return 0 if report.run_state == "success" else 1


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from adfame.settings import get_settings
    from training.checkpoints import checkpoint_uri_for
    from training.dataset import fetch_export
    from training.export_layout import export_uri
    from training.trainer import train

    settings = get_settings()
    config = _train_config(args).resolved()
    uri = args.export or export_uri(args.milestone)
    name = Path(uri.rstrip("/")).name
    base_model = args.base_model or settings.model_source
    export_dir = fetch_export(uri, settings.state_dir / "training" / "exports")
    output = args.output or settings.state_dir / "training" / f"{name}-{config.objective}-s{config.seed}"
    result = train(
        config,
        export_dir,
        base_model=base_model,
        output_dir=Path(output),
        checkpoint_uri=args.checkpoint_uri or checkpoint_uri_for(name, config.model_dump_json(), base_model),
        settings=settings,
    )
    resumed = f" (resumed from step {result.resumed_from})" if result.resumed_from else ""
    print(f"trained {result.steps} steps{resumed}, {result.seconds_per_step:.3f} s/step")
    print(f"loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}; LoRA in {result.lora_dir}")
    if result.run_id:
        print(f"MLflow run {result.run_id}: {settings.mlflow_url}/#/runs/{result.run_id}")
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from adfame.db import engine
    from adfame.mlflow_setup import configure_mlflow
    from adfame.storage import ObjectStore
    from training.lineage import LineageError, format_lineage, trace_request

    try:
        client = configure_mlflow()
        lineage = trace_request(args.request_id, engine=engine(), client=client, store=ObjectStore())
    except LineageError as exc:
        print(f"adfame: {exc}", file=sys.stderr)
        return 1
    print(format_lineage(lineage))
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from adfame.settings import get_settings
    from inference.api import serve

    serve(get_settings())
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    """The dashboard in the foreground (containers); `adfame stack up dashboard` runs the same command."""
    import os

    from adfame.settings import get_settings
    from adfame.stack.services import Dashboard

    service = Dashboard(get_settings())
    command = service.command()
    os.execve(command[0], command, service.environment())


def cmd_api_key_create(args: argparse.Namespace) -> int:
    from adfame.db import engine
    from inference.auth import create_api_key

    key = create_api_key(engine(), args.tenant)
    print(f"API key for tenant {args.tenant} (shown once; store it safely):\n{key}")
    return 0


def cmd_api_key_revoke(args: argparse.Namespace) -> int:
    from adfame.db import engine
    from inference.auth import parse_key_id, revoke_api_key

    key_id = parse_key_id(args.key) or args.key  # never echo a clear key back to the terminal
    if not revoke_api_key(engine(), args.key):
        print(f"adfame: no live API key with id {key_id} (unknown, or revoked already)", file=sys.stderr)
        return 1
    print(f"revoked API key {key_id}")
    return 0


def cmd_canary(args: argparse.Namespace) -> int:
    """One canary action through monitoring.rollout (the code the DAG runs), then the state as a table."""
    from adfame.db import engine
    from adfame.mlflow_setup import configure_mlflow
    from adfame.repositories.deployments import deployment_events
    from adfame.settings import get_settings
    from monitoring import rollout

    settings, db = get_settings(), engine()
    client = configure_mlflow(settings)
    actions = {
        "status": lambda: rollout.canary_status(settings, db, client),
        "start": lambda: rollout.start_canary(
            settings, db, client, version=args.version, weight=args.weight, actor="cli"
        ),
        "set-weight": lambda: rollout.set_weight(settings, db, args.weight, args.reason, actor="cli"),
        "promote": lambda: rollout.promote(settings, db, client, args.reason, actor="cli"),
        "rollback": lambda: rollout.rollback(settings, db, client, args.reason, actor="cli"),
    }
    try:
        state = actions[args.cmd]()
    except rollout.RolloutError as exc:
        print(f"adfame canary {args.cmd}: {exc}", file=sys.stderr)
        return 1
    events = deployment_events(db, settings.registered_model)[-args.history :] if args.history else []
    print(rollout.format_state(state, events))
    return 0


def cmd_canary_watch(args: argparse.Namespace) -> int:
    """Follow the canary_rollout run to its end with traffic flowing (a canary is judged on live requests)."""
    from datetime import datetime

    from adfame.db import engine
    from adfame.mlflow_setup import configure_mlflow
    from adfame.settings import get_settings
    from devkit.background_traffic import BackgroundTraffic
    from monitoring.canary_watch import NoCanaryRun, watch_canary

    settings, db = get_settings(), engine()
    client = configure_mlflow(settings)

    def say(line: str) -> None:
        print(f"{datetime.now():%H:%M:%S}  {line}", flush=True)

    traffic = BackgroundTraffic(settings, db, args.tenant, args.traffic_rate, num_candidates=args.candidates)
    try:
        with traffic:
            watched = watch_canary(
                settings, db, client, say, start_timeout_s=args.start_timeout, timeout_s=args.timeout
            )
    except (NoCanaryRun, TimeoutError) as exc:
        print(f"adfame canary watch: {exc}", file=sys.stderr)
        return 1
    say(
        f"run {watched.run_id} {watched.run_state} after {watched.seconds:.0f}s;"
        f" {len(traffic.submitted)} requests sent meanwhile ({traffic.failures} failed to submit)"
    )
    # A rollback is the canary doing its job: the run reached a decision. Only a run that ended without
    # one (a canary left live, say after a crash) is a failure of the watch.
    return 0 if watched.run_state == "success" or watched.final.state == "rolled_back" else 1


def cmd_report(args: argparse.Namespace) -> int:
    """The closing report of the loop: DAG runs, the rollout, the taste's win rate, URLs."""
    from adfame.db import engine
    from adfame.mlflow_setup import configure_mlflow
    from adfame.settings import get_settings
    from inference.tastes import parse_taste
    from monitoring.loop_report import format_loop_report, loop_report

    settings = get_settings()
    taste = parse_taste(args.taste) if args.taste else None
    print(format_loop_report(loop_report(settings, engine(), configure_mlflow(settings), taste)))
    return 0


def _add_stack_commands(sub: argparse._SubParsersAction) -> None:
    stack = sub.add_parser("stack", help="the local stack of real servers").add_subparsers(
        dest="cmd", required=True
    )
    p = stack.add_parser("install", help="install or build what the services need (apt, Maven, Go)")
    p.add_argument("services", nargs="*", help=SERVICES_HELP)
    p.add_argument("--browser", action="store_true", help="also Chromium, for the selection page tests")
    p.set_defaults(func=cmd_stack_install)
    p = stack.add_parser("up", help="start every service that is not running")
    p.add_argument("services", nargs="*", help=f"only these and what they need: {SERVICES_HELP}")
    p.add_argument("--install", action="store_true", help="install missing prerequisites first")
    p.set_defaults(func=cmd_stack_up)
    p = stack.add_parser("down", help="stop services (all by default)")
    p.add_argument("services", nargs="*", help=SERVICES_HELP)
    p.set_defaults(func=cmd_stack_down)
    p = stack.add_parser("restart", help="stop services and start them again (their dependants keep running)")
    p.add_argument("services", nargs="+", help=SERVICES_HELP)
    p.set_defaults(func=cmd_stack_restart)
    p = stack.add_parser(
        "status", help="each service, its URL and health, and how to log in; exit 1 when any is unhealthy"
    )
    p.set_defaults(func=cmd_stack_status)
    p = stack.add_parser("logs", help="the tail of a service's log")
    p.add_argument("service", nargs="?", help=SERVICES_HELP)
    p.add_argument("-n", "--lines", type=int, default=40)
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(func=cmd_stack_logs)
    p = stack.add_parser("run", help="up, run a command, then stop what this started")
    p.add_argument("--install", action="store_true", help="install missing prerequisites first")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_stack_run)
    p = sub.add_parser("env", help='shell exports for the running stack: eval "$(adfame env)"')
    p.set_defaults(func=cmd_env)


def _add_pipeline_commands(sub: argparse._SubParsersAction) -> None:
    """The schema, Airflow DAGs and the curation pipeline."""
    dbp = sub.add_parser("db", help="the application database").add_subparsers(dest="cmd", required=True)
    p = dbp.add_parser("upgrade", help="apply the migrations in sql/ that are not applied yet")
    p.set_defaults(func=cmd_db_upgrade)

    dags = sub.add_parser("dags", help="Airflow DAGs through the REST API").add_subparsers(
        dest="cmd", required=True
    )
    p = dags.add_parser("trigger", help="unpause and trigger a DAG run")
    p.add_argument("dag_id")
    p.add_argument("--conf", help="run configuration as JSON")
    p.add_argument(
        "--wait", action="store_true", help="wait for the run to finish; exit 1 unless it succeeds"
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait with --wait")
    p.set_defaults(func=cmd_dags_trigger)

    etl = sub.add_parser("etl", help="the curation pipeline").add_subparsers(dest="cmd", required=True)
    p = etl.add_parser("demo", help="generate a mirror of the public data sets and run nightly_etl on it")
    p.add_argument("--rows", type=int, default=3000, help="metadata rows in the mirror")
    p.add_argument("--clips", type=int, default=48, help="clips with real video files")
    p.add_argument("--parts", type=int, default=3, help="zip parts")
    p.add_argument("--snapshot-id", default="demo")
    p.set_defaults(func=cmd_etl_demo)

    p = sub.add_parser(
        "export", help="export a retrain milestone's selections as a training set; prints its URI"
    )
    p.add_argument("--milestone", type=int, required=True)
    p.add_argument("--heldout-share", type=float, default=0.2, help="selections kept aside for evaluation")
    p.add_argument(
        "--curated-sample", type=int, default=0, help="curated train clips of the latest snapshot to add"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "lineage",
        help="where a generated request came from: model version, training run, export, selections, snapshot",
    )
    p.add_argument("request_id", help="a generation request's id (the job id of the REST API)")
    p.set_defaults(func=cmd_lineage)


def _add_training_commands(sub: argparse._SubParsersAction) -> None:
    """Fine-tuning a LoRA on an export (docs/training.md)."""
    p = sub.add_parser("train", help="fine-tune a LoRA on a milestone's export (progress bar, MLflow run)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--milestone", type=int, help="train on this milestone's export")
    source.add_argument("--export", help="an export's s3:// URI or local folder")
    p.add_argument("--config", help="a TrainConfig JSON file (flags below override it)")
    p.add_argument("--objective", choices=("sft", "dpo"))
    p.add_argument("--steps", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--rank", type=int)
    p.add_argument("--beta", type=float, help="Diffusion-DPO's beta")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--base-model", help="model source (default: ADFAME_MODEL_SOURCE)")
    p.add_argument("--output", help="output folder (default: under the state folder)")
    p.add_argument("--checkpoint-uri", help="s3:// prefix for checkpoints (default: one per export+config)")
    p.set_defaults(func=cmd_train)

    retrain = sub.add_parser("retrain", help="what the picks made: retrain_on_feedback per milestone")
    p = retrain.add_subparsers(dest="cmd", required=True).add_parser(
        "show", help="a milestone's DAG run, the version it registered, its gate and evaluation"
    )
    p.add_argument("--milestone", type=int, help="default: the latest milestone")
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="wait for the run to finish")
    p.set_defaults(func=cmd_retrain_show)


def _add_serving_commands(sub: argparse._SubParsersAction) -> None:
    """The model, workers, REST API and its keys."""
    model = sub.add_parser("model", help="the served model").add_subparsers(dest="cmd", required=True)
    p = model.add_parser("init", help="build tiny-wan and publish it to s3://adfame-models/base/tiny-wan")
    p.set_defaults(func=cmd_model_init)

    p = sub.add_parser("worker", help="an inference worker: consume adfame.prompts until SIGTERM")
    p.add_argument("--max-messages", type=int, default=None, help="stop after this many messages")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("api", help="the REST API and the selection page (uvicorn)")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("dashboard", help="the Streamlit dashboard on ADFAME_HOST:ADFAME_DASHBOARD_PORT")
    p.set_defaults(func=cmd_dashboard)

    keys = sub.add_parser("api-key", help="per-tenant API keys").add_subparsers(dest="cmd", required=True)
    p = keys.add_parser("create", help="create a key for a tenant; prints it once")
    p.add_argument("--tenant", required=True)
    p.set_defaults(func=cmd_api_key_create)
    p = keys.add_parser("revoke", help="revoke a key, given in clear or by its id; exit 1 when none was live")
    p.add_argument("key", metavar="KEY_OR_ID")
    p.set_defaults(func=cmd_api_key_revoke)


def _add_traffic_commands(sub: argparse._SubParsersAction) -> None:
    """Prompts in: one by hand, or the prompt pool replayed as traffic."""
    p = sub.add_parser("generate", help="submit a prompt; --wait prints the candidates' URLs")
    p.add_argument("prompt")
    p.add_argument("--tenant", required=True, help="the brand the request belongs to")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=float, default=600)
    for option in ("--candidates", "--frames", "--fps", "--height", "--width", "--seed"):
        p.add_argument(option, type=int)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("simulate", help="replay prompts from the prompt pool as traffic")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--rate", type=float, default=2.0, help="requests started per second")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--tenants", default="nike,adidas", help="comma-separated tenants, used in turn")
    p.add_argument(
        "--select", action="store_true", help="also pick a candidate per job, through the REST API"
    )
    p.add_argument("--taste", help="with --select: rgb:R,G,B, bright, motion or random[:SEED] (the control)")
    p.add_argument("--p-best", type=float, default=1.0, help="with --select: chance of picking the best")
    p.add_argument("--seed", type=int, default=0, help="prompts, request seeds and noisy picks follow it")
    p.add_argument("--api-url", help="with --select: the REST API (default: this stack's)")
    p.add_argument(
        "--api-key", help="with --select: a tenant's key (default: one made per tenant, revoked after)"
    )
    p.add_argument("--job-timeout", type=float, default=300, help="seconds to wait for each job")
    p.set_defaults(func=cmd_simulate)


def _add_canary_commands(sub: argparse._SubParsersAction) -> None:
    """The canary of the served model (docs/canary.md): the actions canary_rollout runs, by hand."""
    canary = sub.add_parser(
        "canary", help="the canary of a challenger: status, start, set-weight, promote, rollback"
    ).add_subparsers(dest="cmd", required=True)
    p = canary.add_parser("status", help="champion, challenger, canary weight and the last deployment")
    p.add_argument("--history", type=int, default=10, help="how many recent deployment events to list")
    p.set_defaults(func=cmd_canary)
    p = canary.add_parser("start", help="start a canary of the challenger (or --version) at the first step")
    p.add_argument(
        "--version", help="a registered version (it gets alias challenger); default: the challenger"
    )
    p.add_argument(
        "--weight", type=int, help="percent of traffic (default: the first of ADFAME_CANARY_STEPS)"
    )
    p.set_defaults(func=cmd_canary, history=0)
    p = canary.add_parser("set-weight", help="give the live canary N percent of traffic")
    p.add_argument("weight", type=int, metavar="N", help="0..100")
    p.add_argument("--reason", default="set by hand")
    p.set_defaults(func=cmd_canary, history=0)
    p = canary.add_parser("promote", help="make the live canary's version the champion")
    p.add_argument("--reason", default="promoted by hand")
    p.set_defaults(func=cmd_canary, history=0)
    p = canary.add_parser("rollback", help="stop the live canary: weight 0, alias challenger removed, alert")
    p.add_argument("--reason", required=True, help="why (recorded with the rollback and its alert)")
    p.set_defaults(func=cmd_canary, history=0)
    p = canary.add_parser(
        "watch",
        help="follow the canary_rollout run to its end, sending traffic meanwhile (progress per step)",
    )
    p.add_argument("--traffic-rate", type=float, default=1.0, help="requests a second while it runs")
    p.add_argument("--tenant", default="canary-traffic", help="the tenant the traffic is sent for")
    p.add_argument("--candidates", type=int, default=5, help="candidates per request of that traffic")
    p.add_argument("--start-timeout", type=float, default=180, help="seconds to wait for a run to start")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the run to end")
    p.set_defaults(func=cmd_canary_watch)


def _add_report_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="the loop's closing report: DAG runs, models, win rate, URLs to open")
    p.add_argument(
        "--taste", help="a simulated marketer's taste (rgb:R,G,B, ...) to judge the canary's version"
    )
    p.set_defaults(func=cmd_report)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, one builder per command group (stack, pipeline, serving, traffic)."""
    parser = argparse.ArgumentParser(
        prog="adfame", description="AdFame: generated video ads that learn from picks."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="group", required=True)
    for add_commands in (
        _add_stack_commands,
        _add_pipeline_commands,
        _add_training_commands,
        _add_serving_commands,
        _add_traffic_commands,
        _add_canary_commands,
        _add_report_command,
    ):
        add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # its retries are reported by our own errors
    from adfame.stack import StackError

    try:
        return args.func(args)
    except StackError as exc:
        print(f"adfame: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a clear line for known client errors, the trace with --verbose
        if args.verbose:
            raise
        print(f"adfame: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
