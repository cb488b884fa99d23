"""The ``scorestream`` console script: broker, topics, worker, challengers, trainer, simulator, demo.

Every subcommand reads the same :class:`~stream.settings.Settings` from the
environment; its flags only say what to do, not how the engine is configured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from stream.settings import Settings, document

#: Subcommands that run a Faust app (Faust's own worker options pass through).
FAUST_COMMANDS = ("worker", "challengers", "trainer")


def _kafka(args: argparse.Namespace, settings: Settings) -> int:
    from stream import kafka_local

    try:
        if args.action == "start":
            print(kafka_local.start(settings))
        elif args.action == "stop":
            print("stopped" if kafka_local.stop(settings) else "no broker was running")
        else:
            status = kafka_local.status(settings)
            print(status)
            return 0 if status.running else 3
    except kafka_local.BrokerError as exc:
        print(f"scorestream kafka {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from stream import admin

    if args.action == "create":
        created = asyncio.run(admin.create_topics(settings))
        print(f"created {len(created)} topic(s) with {settings.partitions} partitions: "
              f"{', '.join(created) or 'all existed already'}")
    else:
        deleted = asyncio.run(admin.delete_topics(settings, prefix=settings.app_id + "-"))
        print(f"deleted {len(deleted)} topic(s): {', '.join(deleted) or 'none existed'}")
    return 0


def _run_faust(command: str, create: Callable[..., Any], args: argparse.Namespace,
               settings: Settings, nice: int = 0) -> int:
    """Run a Faust app's worker, passing Faust's own options through (log level ``warn`` by default);
    ``nice`` is added to the process's niceness first (a learner yields the CPU to scoring)."""
    if nice > 0:
        os.nice(nice)
    faust_args = list(args.faust_args)
    if not any(a.startswith(("-l", "--loglevel")) for a in faust_args):
        faust_args = ["--loglevel", "warn", *faust_args]
    level = next((a.split("=", 1)[1] if "=" in a else faust_args[i + 1]
                  for i, a in enumerate(faust_args) if a.startswith(("-l", "--loglevel"))), "warn")
    app = create(settings, log_level=level)
    sys.argv = [f"scorestream {command}", "worker", *faust_args]
    app.main()
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from stream.app import create_app

    return _run_faust("worker", create_app, args, settings)


def _challengers(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.challengers_process:
        learner = "scorestream trainer learns" if settings.learning == "trainer" else "the workers learn"
        print(f"scorestream challengers: SCORESTREAM_CHALLENGERS={settings.challengers}: {learner} the "
              "challengers; this process is for 'separate'", file=sys.stderr)
        return 2
    from stream.challengers import create_challengers_app

    return _run_faust("challengers", create_challengers_app, args, settings, settings.learner_nice)


def _trainer(args: argparse.Namespace, settings: Settings) -> int:
    if settings.learning != "trainer":
        print(f"scorestream trainer: SCORESTREAM_LEARNING={settings.learning}: the workers learn "
              "themselves; this process is for SCORESTREAM_LEARNING=trainer", file=sys.stderr)
        return 2
    from stream.trainer import create_trainer_app

    return _run_faust("trainer", create_trainer_app, args, settings, settings.learner_nice)


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulator import simulate, write_jsonl
    from stream.producer import produce_events

    events = simulate(args.events or None, seed=args.seed)
    if args.out:
        count = write_jsonl(events, args.out)
        print(f"wrote {count} events to {args.out}")
        return 0
    print(asyncio.run(produce_events(events, settings, rate=args.rate)))
    return 0


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from stream.producer import produce_events, read_event_lines

    report = asyncio.run(produce_events(read_event_lines(args.file), settings, rate=args.rate))
    print(report)
    return 0


def _models(args: argparse.Namespace, settings: Settings) -> int:
    from online_models.persistence import SnapshotError
    from online_models.task_models import CHALLENGERS, format_table
    from stream import model_store
    from stream.pipeline import TASKS

    rows = []
    # the workers' snapshots, or the trainer's (whose champion the workers score with)
    holdings = [settings.learner_holds] + ([CHALLENGERS] if settings.challengers_process else [])
    for task in TASKS:
        for holds in holdings:
            try:
                models = model_store.restore(task, settings, holds)
            except SnapshotError as exc:
                print(f"scorestream models: the {task} snapshot is refused: {exc}", file=sys.stderr)
                return 2
            path = model_store.snapshot_path(settings, task, holds)
            if models is None:
                print(f"{task}: no snapshot yet in {path}")
                continue
            rows.extend(models.describe())
    if rows:
        print(format_table(rows))
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from stream.demo import run_demo

    return run_demo(settings, events=args.events, rate=args.rate, duration=args.duration)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scorestream",
        description="Streaming real-time scoring: Kafka + Faust + River.",
        epilog="Configuration (environment variables):\n" + document(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    kafka = commands.add_parser("kafka", help="run a local single-node Kafka broker (KRaft)")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.set_defaults(run=_kafka)

    topics = commands.add_parser("topics", help="create or delete Scorestream's topics")
    topics.add_argument("action", choices=["create", "delete"])
    topics.set_defaults(run=_topics)

    worker = commands.add_parser(
        "worker", help="run the scoring worker (extra arguments go to Faust's worker command)")
    worker.add_argument("faust_args", nargs=argparse.REMAINDER)
    worker.set_defaults(run=_worker)

    challengers = commands.add_parser(
        "challengers", help="learn and evaluate the challengers off the hot path, one process for"
        " all workers (SCORESTREAM_CHALLENGERS=separate; extra arguments go to Faust)")
    challengers.add_argument("faust_args", nargs=argparse.REMAINDER)
    challengers.set_defaults(run=_challengers)

    trainer = commands.add_parser(
        "trainer", help="join labels and learn every model in one process, publishing what the"
        " workers score with (SCORESTREAM_LEARNING=trainer; extra arguments go to Faust)")
    trainer.add_argument("faust_args", nargs=argparse.REMAINDER)
    trainer.set_defaults(run=_trainer)

    simulate = commands.add_parser("simulate", help="simulated events, to Kafka or to a file")
    simulate.add_argument("--events", type=int, default=10_000, help="0 means endless")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--rate", type=float, default=None, help="events per second")
    simulate.add_argument("--out", default=None, help="write JSON lines here instead of Kafka")
    simulate.set_defaults(run=_simulate)

    produce = commands.add_parser("produce", help="send an event file to Kafka in file order")
    produce.add_argument("file")
    produce.add_argument("--rate", type=float, default=None, help="events per second")
    produce.set_defaults(run=_produce)

    models = commands.add_parser("models", help="each task's models: version, examples learned,"
                                 " rolling metrics, champion (from the latest snapshots of the"
                                 " worker and of the challengers)")
    models.set_defaults(run=_models)

    demo = commands.add_parser("demo", help="broker + worker + challengers + simulator, with live scores")
    demo.add_argument("--events", type=int, default=0, help="0 means endless")
    demo.add_argument("--rate", type=float, default=200.0, help="events per second")
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command not in FAUST_COMMANDS:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command in FAUST_COMMANDS:  # Faust's own worker options pass through
        args.faust_args = [*unknown, *args.faust_args]
    return args.run(args, Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
