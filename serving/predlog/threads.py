"""Two helpers of the log's query runner (serving/predlog/reading.py).

``QueryThreads``: a fixed set of daemon threads, so a query stuck on a silent network never
keeps a shutting-down server alive. ``ProblemLog``: each distinct problem logged once per
interval with a repeat count, so a flood of failing requests is one line, not thousands.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class ProblemLog:
    """Logs each distinct problem at most once per ``every`` seconds, with a repeat count."""

    def __init__(self, log: logging.Logger, every: float = 60.0) -> None:
        self._log, self._every = log, every
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def report(self, problem: str) -> None:
        now = time.monotonic()
        with self._lock:
            last, repeats = self._seen.get(problem, (-math.inf, 0))
            if now - last < self._every:
                self._seen[problem] = (last, repeats + 1)
                return
            if len(self._seen) > 100:
                self._seen.clear()
            self._seen[problem] = (now, 0)
        again = f" (and {repeats} times more since it was last logged)" if repeats else ""
        self._log.warning("cannot read the prediction log: %s%s", problem, again)


_Call = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class QueryThreads:
    """A fixed set of daemon threads, started on first use, running calls in order.

    Unlike ThreadPoolExecutor's threads these are not joined at interpreter exit: a query
    stuck on a silent network must not keep a shutting-down server alive.
    """

    def __init__(self, threads: int, name: str) -> None:
        self._size, self._name = threads, name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shut = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._shut:
                raise RuntimeError("the query threads are shut down")
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._work, name=f"{self._name}-{i}", daemon=True)
                    for i in range(self._size)
                ]
                for thread in self._threads:
                    thread.start()
            self._calls.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        """Cancel the calls not started yet and let every thread end after its current one."""
        with self._lock:
            self._shut = True
            while True:
                try:
                    call = self._calls.get_nowait()
                except queue.Empty:
                    break
                if call is not None:
                    call[0].cancel()
            for _ in self._threads:
                self._calls.put(None)

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn, args = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the waiting coroutine
                future.set_exception(exc)
            else:
                future.set_result(result)
