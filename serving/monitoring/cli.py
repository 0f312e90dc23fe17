"""``python -m serving monitor quality|drift|report``: monitoring from the command line.

``register`` adds the subcommands to the serving CLI. Each reads metadata from the model
registry (``--models-dir``) and aggregates from the log's database (``--database-url``, else
``DATABASE_READ_URL``, else ``DATABASE_URL``). Exit codes: 0 answered (also "insufficient
data"), 1 the database failed, 2 bad input: a malformed window, an unknown model or
version, drift asked of a version without a reference profile. Errors are one line.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from typing import cast

import psycopg
from psycopg_pool import PoolTimeout

from serving.monitoring import drift as drift_mod
from serving.monitoring import quality as quality_mod
from serving.monitoring import report as report_mod
from serving.monitoring import text
from serving.monitoring.queries import Window, open_source
from serving.monitoring.registry import MonitoringInputError, Registry
from serving.predlog.cli import parse_time
from serving.predlog.migrations import SchemaError
from serving.predlog.store import StoreUnavailableError
from serving.settings import Settings

_DB_ERRORS = (psycopg.Error, PoolTimeout, sqlite3.Error, StoreUnavailableError, SchemaError)
_WHEN = "a duration back from now (90s, 15m, 1h, 2d, 1w) or an ISO 8601 time (UTC if no zone)"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``monitor`` (quality, drift, report) to the serving CLI."""
    monitor = commands.add_parser(
        "monitor", help="live quality, drift and an HTML report from the prediction log"
    )
    actions = monitor.add_subparsers(
        dest="monitor_command", required=True, metavar="{quality,drift,report}"
    )
    quality = actions.add_parser(
        "quality", help="per version: live accuracy (or MAE ...) from labels, beside held-out"
    )
    _common(quality, "only this version (default: every version with predictions)")
    quality.set_defaults(handler=run_quality)

    drift = actions.add_parser(
        "drift", help="per feature: has the live distribution moved from the training data?"
    )
    _common(drift, "the version to examine (default: the current one)")
    _min_rows(drift)
    drift.set_defaults(handler=run_drift)

    report = actions.add_parser(
        "report", help="one self-contained HTML file: drift plots, prediction shares, quality"
    )
    _common(report, "the version whose drift to plot (default: the current one)", json=False)
    _min_rows(report)
    report.add_argument("--out", required=True, type=Path, metavar="FILE", help="HTML to write")
    report.set_defaults(handler=run_report)


def _common(parser: argparse.ArgumentParser, version_help: str, *, json: bool = True) -> None:
    parser.add_argument("--model", dest="model_name", metavar="NAME", help="[MODEL_NAME]")
    parser.add_argument("--version", dest="monitor_version", metavar="VERSION", help=version_help)
    parser.add_argument("--since", metavar="TIME", help=f"predictions from then on: {_WHEN}")
    parser.add_argument("--until", metavar="TIME", help=f"predictions before then: {_WHEN}")
    parser.add_argument(
        "--database-url", metavar="URL", help="the log (default: DATABASE_READ_URL, DATABASE_URL)"
    )
    parser.add_argument("--models-dir", type=Path, metavar="DIR", help="registry [MODELS_DIR]")
    if json:
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _min_rows(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--min-rows",
        type=int,
        default=drift_mod.MIN_ROWS,
        metavar="N",
        help=f"live rows below which there is no verdict ({drift_mod.MIN_ROWS})",
    )


def window_of(since: str | None, until: str | None, now: datetime | None = None) -> Window:
    """``--since``/``--until`` as ``log`` parses them; MonitoringInputError when malformed."""
    try:
        start = parse_time(since, now) if since else None
        end = parse_time(until, now) if until else None
    except argparse.ArgumentTypeError as exc:
        raise MonitoringInputError(str(exc)) from None
    if start is not None and end is not None and start >= end:
        raise MonitoringInputError(f"--since ({start.isoformat()}) must be before --until")
    return Window(start, end)


def _url(args: argparse.Namespace, settings: Settings) -> str:
    explicit = cast(str | None, getattr(args, "database_url", None))
    return explicit or settings.database_read_url or settings.database_url


def _print(text: str) -> None:
    """Print to stdout; a reader that went away (``| head``) is not an error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _fail(error: Exception, code: int) -> int:
    """One line on stderr (drivers' messages can span several: their lines are joined)."""
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    return code


def run_quality(args: argparse.Namespace, settings: Settings) -> int:
    try:
        window = window_of(args.since, args.until)
        found = quality_mod.quality(
            open_source(_url(args, settings)), Registry(settings.models_dir),
            settings.model_name, window, version=args.monitor_version,
        )  # fmt: skip
    except MonitoringInputError as exc:
        return _fail(exc, 2)
    except _DB_ERRORS as exc:
        return _fail(exc, 1)
    _print(found.model_dump_json(indent=2) if args.json else text.quality(found))
    return 0


def run_drift(args: argparse.Namespace, settings: Settings) -> int:
    try:
        found = _drift(args, settings)
    except MonitoringInputError as exc:
        return _fail(exc, 2)
    except _DB_ERRORS as exc:
        return _fail(exc, 1)
    if args.json:
        _print(found.model_dump_json(indent=2))
    elif found.status != "not_available":
        _print(text.drift(found))
    if found.status == "not_available":
        print(f"error: drift not available: {found.note}", file=sys.stderr)
        return 2
    return 0


def _drift(args: argparse.Namespace, settings: Settings) -> drift_mod.DriftReport:
    if args.min_rows < 1:
        raise MonitoringInputError("--min-rows must be at least 1")
    window = window_of(args.since, args.until)
    metadata = Registry(settings.models_dir).metadata(settings.model_name, args.monitor_version)
    source = open_source(_url(args, settings))
    return drift_mod.drift(source, metadata, window, min_rows=args.min_rows)


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.min_rows < 1:
            raise MonitoringInputError("--min-rows must be at least 1")
        window = window_of(args.since, args.until)
        html = report_mod.build(
            open_source(_url(args, settings)), Registry(settings.models_dir),
            settings.model_name, window, version=args.monitor_version, min_rows=args.min_rows,
        )  # fmt: skip
        args.out.write_text(html, encoding="utf-8")
    except MonitoringInputError as exc:
        return _fail(exc, 2)
    except _DB_ERRORS as exc:
        return _fail(exc, 1)
    except OSError as exc:
        return _fail(OSError(f"cannot write {args.out}: {exc.strerror}"), 1)
    _print(f"wrote {args.out} ({len(html.encode()) / 1024:.0f} KiB)")
    return 0
