"""``python -m serving migrate`` and ``python -m serving log recent|stats|export``.

``register`` adds the subcommands to the serving CLI; each handler receives the parsed
arguments and the Settings built from the environment and flags. Queries use
``--database-url`` when given, else ``DATABASE_READ_URL``, else ``DATABASE_URL``.
Exit codes: 0 done, 1 the database failed, 2 bad input. docs/prediction-log.md shows each
command with its output.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import cast

import orjson
import psycopg
from psycopg_pool import PoolTimeout

from serving.predlog import export, migrations, queries, stats
from serving.predlog import sqlite as sqlite_store
from serving.predlog.log import is_postgres
from serving.predlog.reading import query_connection_kwargs
from serving.predlog.records import LoggedLabel, LoggedPrediction
from serving.predlog.store import StoreUnavailableError
from serving.settings import Settings

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ERRORS = (psycopg.Error, PoolTimeout, sqlite3.Error, StoreUnavailableError, migrations.SchemaError)
CONNECT_SECONDS = 10.0
"""The commands' PostgreSQL connect timeout; their statements run as long as they take."""
EXPORT_HELP = """\
Rows oldest first, one per predicted instance, the same bytes from PostgreSQL and SQLite.
jsonl: one compact JSON object per row; features and probabilities as objects.
csv: a header, then the columns request_id, row_index, created_at, model_name,
model_version, one feature.<name> column per feature, prediction, one proba.<class> column
per class, latency_ms, client_id, client_request_id. Times are ISO 8601 UTC with
microseconds and Z. With several model versions in range the columns are the union of
their features and classes, and a row's cells of names its version lacks are empty (as are
nulls); --model or --model-version keeps the table to one version's columns.
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate`` and ``log`` (recent, stats, export, feedback) to the serving CLI."""
    migrate = commands.add_parser(
        "migrate",
        help="apply the prediction log's pending schema migrations",
        description="Apply pending migrations; needs a role that may create tables.",
    )
    _database_url(migrate, "the database to migrate (an owner's URL)")
    migrate.set_defaults(handler=run_migrate)

    log = commands.add_parser("log", help="query the prediction log")
    actions = log.add_subparsers(
        dest="log_command", required=True, metavar="{recent,stats,export,feedback}"
    )

    recent = actions.add_parser("recent", help="the latest logged predictions, newest first")
    recent.add_argument("--limit", type=_positive, default=20, help="rows to show (20)")
    _model_filters(recent)
    _database_url(recent)
    recent.set_defaults(handler=run_recent)

    stats_ = actions.add_parser(
        "stats",
        help="per model version: rows, requests, classes (classifiers) or the distribution of"
        " predicted values (regressors), mean top probability, latency",
    )
    _filters(stats_)
    _database_url(stats_)
    stats_.set_defaults(handler=run_stats)

    export_ = actions.add_parser(
        "export",
        help="stream logged rows as CSV or JSON lines",
        description=EXPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export_.add_argument(
        "--format",
        choices=["csv", "jsonl"],
        default="csv",
        dest="export_format",
        help="csv (a header row, a column per feature and class; the default) or jsonl",
    )
    export_.add_argument(
        "--output", "-o", metavar="FILE", help="file to write (default: standard output)"
    )
    _filters(export_)
    _database_url(export_)
    export_.set_defaults(handler=run_export)

    feedback = actions.add_parser(
        "feedback",
        help="the latest labels (POST /feedback), newest first, beside the predictions they label",
    )
    feedback.add_argument("--limit", type=_positive, default=20, help="labels to show (20)")
    feedback.add_argument("--model", metavar="NAME", help="only labels of this model's predictions")
    _database_url(feedback)
    feedback.set_defaults(handler=run_feedback)


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
    _model_filters(parser)


def _model_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", dest="log_model_name", metavar="NAME", help="only this model (model_name)"
    )
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
    try:
        return queries.as_utc(moment)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} {exc}") from None


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
        kwargs = query_connection_kwargs(CONNECT_SECONDS, None)
        return queries.PostgresQueries(lambda: psycopg.connect(url, **kwargs))
    return queries.SqliteQueries(lambda: closing(sqlite_store.connect(url)))


def _filters_of(args: argparse.Namespace) -> queries.Filters:
    return queries.Filters(
        since=getattr(args, "since", None),
        until=getattr(args, "until", None),
        model_name=args.log_model_name,
        model_version=args.log_model_version,
    )


def _fail(error: Exception, code: int = 1) -> int:
    print(f"error: {error}", file=sys.stderr)
    return code


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
    try:
        reader = open_queries(_query_url(args, settings))
        page = reader.page(_filters_of(args), args.limit, None)
    except queries.InvalidFilterError as exc:
        return _fail(exc, 2)
    except _ERRORS as exc:
        return _fail(exc)
    print(format_recent(page.items))
    return 0


def format_recent(items: list[LoggedPrediction]) -> str:
    """One line per row; the client's request id last, as it may be long."""
    header = (
        "created_at (UTC)", "request_id", "row", "model", "version", "prediction", "top_p", "ms",
        "client_request_id",
    )  # fmt: skip
    layout = "{:<23} {:<36} {:>4} {:<16} {:<22} {:<12} {:>6} {:>8}  {}"
    lines = [layout.format(*header)]
    for item in items:
        top = max(item.probabilities.values()) if item.probabilities else None
        fields = (
            item.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            item.request_id, item.row_index, item.model_name, item.model_version,
            _short(item.prediction), "" if top is None else f"{top:.3f}", f"{item.latency_ms:.2f}",
            item.client_request_id or "",
        )  # fmt: skip
        lines.append(layout.format(*fields))
    return "\n".join(lines)


def run_feedback(args: argparse.Namespace, settings: Settings) -> int:
    try:
        found = open_queries(_query_url(args, settings)).labels(args.model, args.limit)
    except _ERRORS as exc:
        return _fail(exc)
    print(format_labels(found) if found else "no labels received")
    return 0


def format_labels(items: list[LoggedLabel]) -> str:
    """One line per label; a label whose prediction is not in the log shows ``-`` for it."""
    header = ("received_at (UTC)", "request_id", "row", "label", "prediction", "model", "version")
    layout = "{:<23} {:<36} {:>4} {:<12} {:<12} {:<16} {}"
    lines = [layout.format(*header)]
    for item in items:
        label = item.label if isinstance(item.label, str) else orjson.dumps(item.label).decode()
        fields = (
            item.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            item.request_id, item.row_index, _short(label),
            "-" if item.prediction is None else _short(item.prediction),
            item.model_name or "-", item.model_version or "-",
        )  # fmt: skip
        lines.append(layout.format(*fields))
    return "\n".join(lines)


def _short(prediction: str) -> str:
    """A regressor's value to 6 significant digits, so the columns stay aligned."""
    if len(prediction) > 12 and re.fullmatch(stats.NUMBER, prediction):
        return f"{float(prediction):.6g}"
    return prediction


def run_stats(args: argparse.Namespace, settings: Settings) -> int:
    try:
        found = open_queries(_query_url(args, settings)).stats(_filters_of(args))
    except queries.InvalidFilterError as exc:
        return _fail(exc, 2)
    except _ERRORS as exc:
        return _fail(exc)
    print(format_stats(found) if found else "no predictions logged in that range")
    return 0


def format_stats(found: list[stats.VersionStats]) -> str:
    blocks = []
    for s in found:
        first, last = (t.isoformat(timespec="seconds") for t in (s.first_at, s.last_at))
        lines = [
            f"{s.model_name} {s.model_version}: {s.rows} rows in {s.requests} requests,"
            f" {first} .. {last}"
        ]
        if s.values is not None:
            v = s.values
            lines.append(
                f"  predicted values: mean {v.mean:.6g}, min {v.min:.6g}, p5 {v.p5:.6g},"
                f" p25 {v.p25:.6g}, p50 {v.p50:.6g}, p75 {v.p75:.6g}, p95 {v.p95:.6g},"
                f" max {v.max:.6g}"
            )
        else:
            shares = [f"{label} {n} ({n / s.rows:.1%})" for label, n in s.classes.items()]
            if s.other_classes:
                shares.append(
                    f"{s.other_classes} other classes {s.other_rows} ({s.other_rows / s.rows:.1%})"
                )
            lines.append(f"  predictions: {', '.join(shares)}")
        if s.mean_top_probability is not None:
            lines.append(f"  mean top probability: {s.mean_top_probability:.4f}")
        if s.latency_ms is not None:
            p50, p95, p99 = s.latency_ms
            lines.append(f"  latency ms: p50 {p50:.2f}  p95 {p95:.2f}  p99 {p99:.2f}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    fmt = cast(export.Format, args.export_format)
    try:
        reader = open_queries(_query_url(args, settings))
        filters = _filters_of(args)
        if args.output:
            with open(args.output, "wb") as out:
                reader.export(filters, fmt, out)
        else:
            reader.export(filters, fmt, sys.stdout.buffer)
    except BrokenPipeError:
        # The reader went away (`| head`): not an error; keep Python from complaining too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except queries.InvalidFilterError as exc:
        return _fail(exc, 2)
    except (*_ERRORS, export.ExportError, OSError) as exc:
        return _fail(exc)
    return 0
