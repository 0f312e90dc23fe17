"""The supervisor of ``serve --workers N`` with stand-in workers: restarts, backoff, signals.

Each stand-in is a real process started exactly as a worker is (socket and notify
descriptors, settings on stdin); it behaves as ``FAKE_WORKER`` says, so the supervisor's
decisions can be watched without loading models. tests/serving/test_workers.py runs the
real workers.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from serving import slots
from serving.server import listen
from serving.supervisor import EXIT_MARGIN_SECONDS, backoff, supervise
from tests.serving.conftest import make_settings

FAKE = """
import json, os, signal, sys, time
args = sys.argv[1:]
slot = int(args[args.index("--slot") + 1])
notify = int(args[args.index("--notify-fd") + 1])
settings = json.loads(sys.stdin.read())
mode, out = os.environ["FAKE_WORKER"], os.environ["FAKE_OUT"]
def note(word, *rest):
    with open(out, "a") as f:
        f.write(" ".join([word, str(slot), *map(str, rest)]) + "\\n")
note("started", settings["spool_dir"], settings["spool_max_bytes"])
if mode == "fail":
    sys.exit(3)
signal.signal(signal.SIGHUP, lambda *_: note("hup"))
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: (note("term"), sys.exit(0)))
time.sleep(slot * 1.0)  # slot 1 starts a second later than slot 0
note("serving")
os.write(notify, b"1")
os.close(notify)
if mode == "crash":
    time.sleep(0.2)
    sys.exit(1)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "notes.txt"
    path.touch()
    monkeypatch.setenv("FAKE_OUT", str(path))
    return path


def notes(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def run_supervisor(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch, **overrides: object
) -> Callable[[], int]:
    """A callable that runs supervise() with two stand-in workers."""
    monkeypatch.setenv("FAKE_WORKER", mode)
    settings = make_settings(
        tmp_path, tmp_path, workers=2, spool_dir=tmp_path / "spool", **overrides
    )
    sock = listen("127.0.0.1", 0)
    claim = slots.claim(settings.spool_dir, settings.workers)
    return lambda: supervise(settings, sock, claim, command=(sys.executable, "-c", FAKE))


@pytest.fixture
def actions() -> Iterator[Callable[[Callable[[], None]], None]]:
    """Run a script beside the supervisor (which must own the main thread for signals)."""
    threads: list[threading.Thread] = []

    def start(script: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                script()
            finally:  # whatever happened, never leave the supervisor running
                os.kill(os.getpid(), signal.SIGTERM)

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    for thread in threads:
        thread.join(30)


def test_backoff_restarts_at_once_then_waits_longer_each_time() -> None:
    assert [backoff(n) for n in range(1, 9)] == [0, 1, 2, 4, 8, 16, 30, 30]


def test_a_worker_that_fails_before_any_served_stops_the_server_with_exit_1(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="serving.supervisor")
    run = run_supervisor(tmp_path, "fail", monkeypatch)

    assert run() == 1
    assert "exited with code 3 before it served" in caplog.text
    assert len([n for n in notes(out) if n[0] == "started"]) <= 2  # no restart loop


def test_signals_reach_every_worker_each_with_its_slot_and_share_of_the_cap(
    tmp_path: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    actions: Callable[[Callable[[], None]], None],
) -> None:
    run = run_supervisor(tmp_path, "serve", monkeypatch, spool_max_bytes=64 << 20)

    def script() -> None:
        until(lambda: ["serving", "0"] in notes(out))
        os.kill(os.getpid(), signal.SIGHUP)  # slot 1 is still starting: it gets it later
        until(lambda: ["hup", "1"] in notes(out) and ["hup", "0"] in notes(out))

    actions(script)
    assert run() == 0
    seen = notes(out)
    started = sorted(n for n in seen if n[0] == "started")
    assert started == [
        ["started", str(k), str(tmp_path / "spool" / f"slot-{k}"), str(32 << 20)] for k in (0, 1)
    ]
    assert sorted(n for n in seen if n[0] in {"hup", "term"}) == [
        ["hup", "0"], ["hup", "1"], ["term", "0"], ["term", "1"],
    ]  # fmt: skip
    assert seen.index(["serving", "1"]) < seen.index(["hup", "1"])


def test_a_crash_looping_worker_is_restarted_with_growing_delays(
    tmp_path: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    actions: Callable[[Callable[[], None]], None],
) -> None:
    caplog.set_level(logging.INFO, logger="serving.supervisor")
    run = run_supervisor(tmp_path, "crash", monkeypatch)
    actions(lambda: time.sleep(6))

    assert run() == 0
    starts = [n for n in notes(out) if n[0] == "started" and n[1] == "0"]
    # Without a backoff a worker living 0.2 s would start ~20 times in 6 s.
    assert 3 <= len(starts) <= 6
    assert "exited with code 1 after" in caplog.text
    assert "3 times in a row within 30 s of its start; restarting it in slot 0 in 2 s" in (
        caplog.text
    )


def test_a_worker_that_does_not_drain_is_killed_after_the_deadline(
    tmp_path: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    actions: Callable[[Callable[[], None]], None],
) -> None:
    caplog.set_level(logging.INFO, logger="serving.supervisor")
    run = run_supervisor(tmp_path, "stubborn", monkeypatch, drain_seconds=0.5)
    actions(lambda: until(lambda: ["serving", "1"] in notes(out)))

    assert run() == 0
    assert (
        f"still running {0.5 + EXIT_MARGIN_SECONDS:.0f} s after the stop signal: killed"
        in caplog.text
    )


def test_the_metrics_folder_is_removed_and_the_spool_released_at_exit(
    tmp_path: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    actions: Callable[[Callable[[], None]], None],
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    run = run_supervisor(tmp_path, "serve", monkeypatch)
    actions(lambda: until(lambda: ["serving", "1"] in notes(out)))

    assert run() == 0
    assert list((tmp_path / "tmp").iterdir()) == []
    slots.claim(tmp_path / "spool", 2).release()  # free again
