"""Command line of the serving deployable: ``serve``, ``migrate``, ``log ...``, ``monitor ...``.

Flags override environment variables; both end up in one ``Settings``, read once here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from serving.monitoring import cli as monitoring_cli
from serving.predlog import cli as predlog_cli
from serving.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]

# flag destination -> Settings field, for flags that override an environment variable.
_OVERRIDES = {
    "models_dir": "models_dir",
    "model_name": "model_name",
    "model_version": "model_version",
    "database_url": "database_url",
    "host": "host",
    "port": "port",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the model over HTTP (uvicorn)")
    serve.add_argument("--models-dir", type=Path, help="model registry root [MODELS_DIR]")
    serve.add_argument("--model-name", help="model to serve [MODEL_NAME]")
    serve.add_argument("--model-version", help="pin a version instead of current [MODEL_VERSION]")
    serve.add_argument("--database-url", help="prediction log store [DATABASE_URL]")
    serve.add_argument("--host", help="interface to listen on [HOST]")
    serve.add_argument("--port", type=int, help="port to listen on [PORT]")
    serve.set_defaults(handler=_serve)
    predlog_cli.register(commands)
    monitoring_cli.register(commands)
    return parser


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """Environment first, then every flag that was given."""
    overrides = {
        field: getattr(args, dest)
        for dest, field in _OVERRIDES.items()
        if getattr(args, dest, None) is not None
    }
    return Settings(**overrides, **extra)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper() or 'settings'}: {e['msg']}"
            for e in exc.errors()
        )
        parser.exit(2, f"invalid configuration: {problems}\n")
    handler: Handler = args.handler
    return handler(args, settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from serving.server import run  # noqa: PLC0415 - keep `log`/`migrate` free of uvicorn

    return run(settings)
