"""``python -m bench`` (``make bench``): options, the run, the table and the targets.

Examples: ``make bench`` (the full run, about 25 minutes); ``make bench BENCH_ARGS=--quick``
(a smoke run: short measurements, one round, no drain benchmark);
``make bench BENCH_ARGS="--apps ceiling,naive --models logreg --rows 1 --json"``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import procs, render, report, runner, wrk
from bench.models import MODELS, train_models
from bench.servers import APP_NAMES, APPS

DEFAULT_ROWS = (1, 100)
DEFAULT_CONNECTIONS = (1, 32)


def _names(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [part.strip() for part in text.split(",") if part.strip()]
        unknown = sorted(set(values) - set(allowed))
        if not values or unknown:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return values

    return parse


def _numbers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected comma-separated integers >= 1")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--apps",
        type=_names(APP_NAMES),
        default=list(APP_NAMES),
        help=f"apps to run (default all: {','.join(APP_NAMES)})",
    )
    parser.add_argument(
        "--models",
        type=_names(tuple(MODELS)),
        default=list(MODELS),
        help="models of the workloads (default logreg,rf)",
    )
    parser.add_argument(
        "--rows", type=_numbers, default=list(DEFAULT_ROWS), help="rows per request (default 1,100)"
    )
    parser.add_argument(
        "--connections",
        type=_numbers,
        default=list(DEFAULT_CONNECTIONS),
        help="concurrent connections (default 1,32)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="seconds of unmeasured load before each workload (0: none)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (medians)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 s per measurement, 1 s warm-up, one round",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="also write everything to bench/results/bench-<time>.json",
    )
    parser.add_argument(
        "--no-drain",
        action="store_true",
        help="skip the drain benchmark (python -m bench.drain; it runs only with skship-pg, "
        "and --quick skips it too)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder (models, server logs, databases)",
    )
    return parser


def config_from(args: argparse.Namespace) -> runner.Config:
    cpus = procs.usable_cpus()
    server_cpu, load_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    spare = tuple(cpus[2:]) if len(cpus) >= 2 else ()
    if args.quick:
        args.duration, args.warmup, args.rounds = 2, 1, 1
    return runner.Config(
        apps=[app for app in APPS if app.name in args.apps],
        models=[m for m in MODELS if m in args.models],
        rows=sorted(set(args.rows)),
        connections=sorted(set(args.connections)),
        duration_s=max(1, args.duration),
        warmup_s=max(0, args.warmup),
        rounds=max(1, args.rounds),
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        spare_cpus=spare,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        wrk.find_wrk()
    except wrk.WrkError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    config = config_from(args)
    if config.server_cpu is None:
        print("bench: WARNING: fewer than 2 CPUs usable, nothing is pinned", file=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="skship-bench-"))
    try:
        print(f"bench: training models into {workdir / 'models'}", file=sys.stderr)
        models = train_models(workdir / "models", config.models)
        results = runner.run(config, models, workdir / "models", workdir)
        with_drain = "skship-pg" in args.apps and not (args.quick or args.no_drain)
        drain = _drain_rows_per_s() if with_drain else None
    finally:
        if args.keep:
            print(f"bench: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = report.table(results)
    found = report.targets(results, drain)
    scaled = report.scaling(results)
    print(render.table(rows))
    print()
    print(render.targets(found))
    if scaled:
        print()
        print(render.scaling(scaled))
    for instance in (i for i in results.instances if i.error):
        retried = " (discarded and run again)" if instance.retried else ""
        print(
            f"\n{instance.app} {instance.model} (round {instance.round}){retried}: {instance.error}"
        )
    failures = [i for i in results.instances if i.error and not i.retried]
    if args.json:
        path = render.write_json(results, rows, found, scaled)
        print(f"\nbench: wrote {path}", file=sys.stderr)
    return 1 if failures else 0


def _drain_rows_per_s() -> float | None:
    """Run the drain benchmark (``python -m bench.drain``, item 3 of the issue) if it exists.

    It is its own command with its own output; the table's target takes its COPY rows/s.
    """
    if importlib.util.find_spec("bench.drain") is None:
        print("bench: no bench/drain.py here, the drain target is not measured", file=sys.stderr)
        return None
    print("bench: running python -m bench.drain", file=sys.stderr, flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "bench.drain"], capture_output=True, text=True, check=False
    )
    print(done.stdout + done.stderr, file=sys.stderr)
    for line in done.stdout.splitlines():
        fields = line.split()
        if done.returncode == 0 and fields and fields[0] == "copy":
            with contextlib.suppress(ValueError):
                return float(fields[-1])
    return None
