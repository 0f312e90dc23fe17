"""``python -m serving migrate`` and ``python -m serving log recent|stats|export``.

``register`` adds the subcommands to the serving CLI; each handler receives the parsed
arguments and the Settings built from the environment and flags. Queries use
``--database-url`` when given, else ``DATABASE_READ_URL``, else ``DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from typing import cast

import psycopg
from psycopg_pool import PoolTimeout

from serving.predlog import migrations, queries
from serving.predlog import sqlite as sqlite_store
from serving.predlog.log import is_postgres
from serving.predlog.records import LoggedPrediction
from serving.predlog.store import StoreUnavailableError
from serving.settings import Settings

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ERRORS = (psycopg.Error, PoolTimeout, sqlite3.Error, StoreUnavailableError, migrations.SchemaError)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate`` and ``log`` (recent, stats, export) to the serving CLI."""
    migrate = commands.add_parser(
        "migrate",
        help="apply the prediction log's pending schema migrations",
        description="Apply pending migrations; needs a role that may create tables.",
    )
    _database_url(migrate, "the database to migrate (an owner's URL)")
    migrate.set_defaults(handler=run_migrate)

    log = commands.add_parser("log", help="query the prediction log")
    actions = log.add_subparsers(dest="log_command", required=True, metavar="{recent,stats,export}")

    recent = actions.add_parser("recent", help="the latest logged predictions, newest first")
    recent.add_argument("--limit", type=_positive, default=20, help="rows to show (20)")
    recent.add_argument(
        "--model-version", dest="log_model_version", metavar="VERSION", help="only this version"
    )
    _database_url(recent)
    recent.set_defaults(handler=run_recent)

    stats = actions.add_parser(
        "stats", help="per model version: count, classes, mean top probability, latency"
    )
    _filters(stats)
    _database_url(stats)
    stats.set_defaults(handler=run_stats)

    export = actions.add_parser("export", help="stream logged rows as CSV or JSON lines")
    export.add_argument(
        "--format",
        choices=["csv", "jsonl"],
        default="csv",
        dest="export_format",
        help="csv (with a header row; the default) or jsonl (one JSON object per row)",
    )
    export.add_argument(
        "--output", "-o", metavar="FILE", help="file to write (default: standard output)"
    )
    _filters(export)
    _database_url(export)
    export.set_defaults(handler=run_export)


def _database_url(parser: argparse.ArgumentParser, text: str | None = None) -> None:
    parser.add_argument(
        "--database-url",
        dest="database_url",
        metavar="URL",
        help=text or "the log's database (default: DATABASE_READ_URL, else DATABASE_URL)",
    )


def _filters(parser: argparse.ArgumentParser) -> None:
    when = "a duration back from now (90s, 15m, 1h, 2d, 1w) or an ISO 8601 time (UTC if no zone)"
    parser.add_argument("--since", type=parse_time, metavar="TIME", help=f"from then on: {when}")
    parser.add_argument("--until", type=parse_time, metavar="TIME", help=f"before then: {when}")
    parser.add_argument(
        "--model-version", dest="log_model_version", metavar="VERSION", help="only this version"
    )


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """``1h`` means one hour ago; anything else must be an ISO 8601 time."""
    match = _DURATION.match(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match[2]]: float(match[1])})
        return (now or datetime.now(UTC)) - delta
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration like 1h nor an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _query_url(args: argparse.Namespace, settings: Settings) -> str:
    explicit = cast(str | None, getattr(args, "database_url", None))
    return explicit or settings.database_read_url or settings.database_url


def open_queries(url: str) -> queries.Queries:
    """Queries on ``url`` over one direct connection per call (no pool: a CLI runs briefly)."""
    if is_postgres(url):
        return queries.PostgresQueries(
            lambda: psycopg.connect(
                url, autocommit=True, prepare_threshold=None, options="-c TimeZone=UTC"
            )
        )
    return queries.SqliteQueries(url)


def _filters_of(args: argparse.Namespace) -> queries.Filters:
    return queries.Filters(
        getattr(args, "since", None), getattr(args, "until", None), args.log_model_version
    )


def _fail(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 1


def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    url = cast(str | None, getattr(args, "database_url", None)) or settings.database_url
    try:
        if is_postgres(url):
            with psycopg.connect(url, autocommit=True) as conn:
                applied = migrations.migrate_postgres(conn)
        else:
            conn_sqlite = sqlite_store.connect(url, create=True)
            try:
                applied = migrations.migrate_sqlite(conn_sqlite)
            finally:
                conn_sqlite.close()
    except _ERRORS as exc:
        return _fail(exc)
    for migration in applied:
        print(f"applied {migration.version:04d}_{migration.name}")
    if not applied:
        print("the prediction log schema is current")
    return 0


def run_recent(args: argparse.Namespace, settings: Settings) -> int:
    filters = queries.Filters(model_version=args.log_model_version)
    try:
        page = open_queries(_query_url(args, settings)).page(filters, args.limit, None)
    except _ERRORS as exc:
        return _fail(exc)
    print(format_recent(page.items))
    return 0


def format_recent(items: list[LoggedPrediction]) -> str:
    header = ("created_at (UTC)", "request_id", "row", "model_version", "prediction", "top_p", "ms")
    lines = ["{:<23} {:<36} {:>4} {:<22} {:<12} {:>6} {:>8}".format(*header)]
    for item in items:
        top = max(item.probabilities.values()) if item.probabilities else None
        created_at = item.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        lines.append(
            f"{created_at:<23} {item.request_id:<36}"
            f" {item.row_index:>4} {item.model_version:<22} {item.prediction:<12}"
            f" {'' if top is None else f'{top:.3f}':>6} {item.latency_ms:>8.2f}"
        )
    return "\n".join(lines)


def run_stats(args: argparse.Namespace, settings: Settings) -> int:
    try:
        found = open_queries(_query_url(args, settings)).stats(_filters_of(args))
    except _ERRORS as exc:
        return _fail(exc)
    print(format_stats(found) if found else "no predictions logged in that range")
    return 0


def format_stats(found: list[queries.VersionStats]) -> str:
    blocks = []
    for s in found:
        classes = ", ".join(f"{label} {n} ({n / s.rows:.1%})" for label, n in s.classes.items())
        first, last = (t.isoformat(timespec="seconds") for t in (s.first_at, s.last_at))
        lines = [
            f"{s.model_name} {s.model_version}: {s.rows} rows in {s.requests} requests,"
            f" {first} .. {last}",
            f"  predictions: {classes}",
        ]
        if s.mean_top_probability is not None:
            lines.append(f"  mean top probability: {s.mean_top_probability:.4f}")
        if s.latency_ms is not None:
            p50, p95, p99 = s.latency_ms
            lines.append(f"  latency ms: p50 {p50:.2f}  p95 {p95:.2f}  p99 {p99:.2f}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    fmt = cast(queries.ExportFormat, args.export_format)
    try:
        reader = open_queries(_query_url(args, settings))
        if args.output:
            with open(args.output, "wb") as out:
                reader.export(_filters_of(args), fmt, out)
        else:
            reader.export(_filters_of(args), fmt, sys.stdout.buffer)
    except BrokenPipeError:
        # The reader went away (`| head`): not an error; keep Python from complaining too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except _ERRORS as exc:
        return _fail(exc)
    return 0
