"""One benchmark run: rounds x apps x models, each server started, checked, loaded, stopped.

Rounds are interleaved (round 1 runs every app, then round 2 every app again), so slow
drift of a noisy machine hits every app alike; the report takes medians over rounds.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import procs, skship, stores, wrk
from bench.check import CheckError, check
from bench.models import DATASET, BenchModel, Protocol, body, sample_inputs
from bench.servers import App, Server, ServerError, start

ANY_MODEL = "any"
BODIES_PER_WORKLOAD = 64
CHECKED_BODIES = 8


@dataclass(frozen=True)
class Config:
    apps: list[App]
    models: list[str]
    rows: list[int]
    connections: list[int]
    duration_s: int
    warmup_s: int
    rounds: int
    server_cpu: int | None
    load_cpu: int | None
    spare_cpus: tuple[int, ...] = ()
    """CPUs neither the server's nor the load's: a server's second worker runs there."""

    def cpus_for(self, app: App) -> list[int] | None:
        """The CPUs ``app`` is pinned to: the server CPU, plus a spare one per extra worker
        while there are spares (on 2 CPUs every worker shares the server CPU)."""
        if self.server_cpu is None:
            return None
        return [self.server_cpu, *self.spare_cpus][: max(1, app.workers)]


@dataclass(frozen=True)
class Measurement:
    round: int
    app: str
    model: str
    rows: int
    connections: int
    result: wrk.WrkResult
    server_cpu_s: float
    """CPU time the server side used meanwhile: the server process and its descendants (a
    supervisor's workers), and PostgreSQL's postmaster and backends for skship-pg."""

    @property
    def cpu_share(self) -> float:
        """Fraction of its core the server side got: 1.0 busy all along, less when starved."""
        return self.server_cpu_s / self.result.duration_s if self.result.duration_s else 0.0

    @property
    def requests_per_cpu_s(self) -> float:
        """Throughput per CPU-second: steadier than req/s when neighbours steal the core."""
        return self.result.requests / self.server_cpu_s if self.server_cpu_s else 0.0


@dataclass
class Instance:
    """One server process: how it started, what it weighed, what it logged."""

    round: int
    app: str
    model: str
    ready_s: float | None = None
    memory: procs.Memory | None = None
    rows_served: int | None = None
    rows_stored: int | None = None
    drain_s: float | None = None
    exit_code: int | None = None
    error: str | None = None
    retried: bool = False
    """It exited mid-run and was started again; its measurements were discarded."""


@dataclass
class Results:
    config: Config
    measurements: list[Measurement] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)


def run(config: Config, models: dict[str, BenchModel], models_dir: Path, workdir: Path) -> Results:
    """Every round, every app, every model: start, check, measure, count, stop."""
    bench = _Run(config, models, models_dir, workdir)
    try:
        for round_ in range(1, config.rounds + 1):
            for app in config.apps:
                for key in config.models if app.per_model else [ANY_MODEL]:
                    if app.serves(models.get(key)):
                        bench.instance_with_retry(round_, app, key)
    finally:
        if bench.postgres is not None:
            bench.postgres.close()
    return bench.results


class _Run:
    def __init__(
        self, config: Config, models: dict[str, BenchModel], models_dir: Path, workdir: Path
    ) -> None:
        self.config, self.models, self.models_dir, self.workdir = (
            config, models, models_dir, workdir
        )  # fmt: skip
        self.results = Results(config)
        self.postgres: stores.PinnedPostgres | None = None
        self._samples: dict[tuple[str, int], list[Any]] = {}
        self._bodies: dict[tuple[str, Protocol, int], Path] = {}

    def samples(self, dataset: str, rows: int) -> list[Any]:
        if (dataset, rows) not in self._samples:
            self._samples[dataset, rows] = sample_inputs(dataset, rows, BODIES_PER_WORKLOAD)
        return self._samples[dataset, rows]

    def body_file(self, dataset: str, protocol: Protocol, rows: int) -> Path:
        """The workload's bodies, one per line, written once per run."""
        key = (dataset, protocol, rows)
        if key not in self._bodies:
            path = self.workdir / f"bodies-{dataset}-{protocol}-{rows}.jsonl"
            samples = self.samples(dataset, rows)
            self._bodies[key] = wrk.write_bodies(path, [body(X, protocol) for X in samples])
        return self._bodies[key]

    def instance_with_retry(self, round_: int, app: App, key: str) -> None:
        """Run an instance; if its server exits mid-run, discard it and run it once more.

        On a shared machine a server can be stopped from outside (skship logs the signal);
        that is not a result of the app, and one retry keeps the table complete.
        """
        measured = len(self.results.measurements)
        first = self.instance(round_, app, key)
        if first.error and "exited with code" in first.error:
            del self.results.measurements[measured:]
            first.retried = True
            _say(f"[round {round_}] {app.name} {key}: exited mid-run; starting it once more")
            self.instance(round_, app, key)

    def instance(self, round_: int, app: App, key: str) -> Instance:
        """One server process: start it, check it, measure every workload, count its log."""
        instance = Instance(round_, app.name, key)
        self.results.instances.append(instance)
        label = f"[round {round_}] {app.name} {key}"
        folder = self.workdir / f"r{round_}-{app.name}-{key}"
        model = self.models.get(key)
        try:
            database_url = self._database_url(app, folder)
            server = start(
                app, model, models_dir=self.models_dir, workdir=folder,
                database_url=database_url, cpus=self.config.cpus_for(app),
            )  # fmt: skip
        except (ServerError, OSError, RuntimeError) as exc:
            instance.error = f"did not start: {exc}"
            _say(f"{label}: {instance.error}")
            return instance
        instance.ready_s = server.ready_s
        _say(f"{label}: ready in {server.ready_s:.2f} s (pid {server.pid}, port {server.port})")
        try:
            with httpx.Client(timeout=30.0) as client:
                if app.kind == "skship":
                    _require_store(client, server, app)
                logged = app.kind == "skship" and app.store != "none"
                served = 0
                route = app.route
                for rows in self.config.rows:
                    before = skship.settled_predict_200s(client, server.url, route) if logged else 0
                    self._measure(instance, server, client, model, rows, label)
                    if logged:
                        after = skship.settled_predict_200s(client, server.url, route)
                        served += (after - before) * rows
                instance.memory = procs.memory(server.pid)
                if logged:
                    instance.rows_served = served
                    self._count_log(instance, client, server, database_url, label)
        except (CheckError, ServerError, wrk.WrkError, httpx.HTTPError) as exc:
            instance.error = f"{type(exc).__name__}: {exc}"
            _say(f"{label}: {instance.error}")
        finally:
            instance.exit_code = server.stop()
        return instance

    def _database_url(self, app: App, folder: Path) -> str:
        """A fresh store per instance, so its row count is that instance's alone."""
        if app.store == "postgresql":
            if self.postgres is None:
                self.postgres = stores.PinnedPostgres(self.config.server_cpu)
            return self.postgres.new_database()
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder / 'predictions.db'}"

    def _measure(
        self,
        instance: Instance,
        server: Server,
        client: httpx.Client,
        model: BenchModel | None,
        rows: int,
        label: str,
    ) -> None:
        """Warm up, then for each connection count: check the answers, measure with wrk."""
        app, config = server.app, self.config
        dataset = model.dataset if model is not None else DATASET
        url = f"{server.url}{app.path(model)}"
        bodies = self.body_file(dataset, app.protocol, rows)
        samples = self.samples(dataset, rows)[:CHECKED_BODIES]
        check(client, server.url, server.app, model, samples)
        if config.warmup_s > 0:
            wrk.run(
                url, bodies, connections=max(config.connections), duration_s=config.warmup_s,
                cpu=config.load_cpu,
            )  # fmt: skip
        roots = [server.pid]
        postmaster = self.postgres.cluster.postmaster_pid() if self.postgres else None
        if server.app.store == "postgresql" and postmaster is not None:
            roots.append(postmaster)
        for connections in config.connections:
            check(client, server.url, server.app, model, samples)
            cpu_before = procs.cpu_seconds(*roots)
            result = wrk.run(
                url, bodies, connections=connections, duration_s=config.duration_s,
                cpu=config.load_cpu,
            )  # fmt: skip
            cpu = procs.cpu_seconds(*roots) - cpu_before
            server.require_alive(f"{rows} row(s) x {connections} connections")
            self.results.measurements.append(
                Measurement(
                    instance.round, instance.app, instance.model, rows, connections, result, cpu
                )
            )
            _say(progress_line(label, rows, connections, result, cpu))

    def _count_log(
        self, instance: Instance, client: httpx.Client, server: Server, url: str, label: str
    ) -> None:
        """Rows in the store once drained, to compare with the rows served."""
        instance.rows_stored, instance.drain_s = stores.wait_drained(
            lambda: stores.count_rows(url), lambda: skship.has_unwritten(client, server.url)
        )
        _say(
            f"{label}: {instance.rows_stored} rows stored, {instance.rows_served} served "
            f"(drained {instance.drain_s:.1f} s after the load)"
        )


def _require_store(client: httpx.Client, server: Server, app: App) -> None:
    """Refuse to measure a variant whose build does not log where the variant says."""
    expected = "disabled" if app.store == "none" else app.store
    store = skship.log_store(client, server.url)
    if store != expected:
        raise CheckError(
            f"{app.name}: GET /ready reports log store {store!r}, expected {expected!r} "
            "(this build of skship does not log there yet); not measured"
        )


def progress_line(
    label: str, rows: int, connections: int, result: wrk.WrkResult, cpu: float
) -> str:
    errors = ""
    if result.errors:
        kinds = {"non-2xx": result.non_2xx, **result.socket_errors}
        detail = ", ".join(f"{kind} {n}" for kind, n in kinds.items() if n)
        errors = f", {result.errors} ERRORS ({detail})"
    share = cpu / result.duration_s if result.duration_s else 0.0
    return (
        f"{label} {rows} row(s) x {connections} conn: {result.rps:,.0f} req/s, "
        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, server CPU {share:.0%}{errors}"
    )


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
