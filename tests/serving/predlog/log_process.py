"""A process that appends numbered records to a real log and reports each acknowledged one.

    python -m tests.serving.predlog.log_process <database url> <spool dir> <count>

Request ids are ``uuid.UUID(int=i)``; ``A <i>`` on stdout means append() returned for
record i (its response would have been sent). Used to SIGKILL a log mid-drain.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import uuid
from pathlib import Path

from tests.serving.predlog.helpers import make_record, open_started


def request_id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def main() -> int:
    url, spool_dir, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    log = open_started(url, spool_dir, log_batch_rows=20, log_flush_interval_seconds=0.01)
    template = make_record(rows=2, seed=0)
    for i in range(count):
        log.append([dataclasses.replace(template, request_id=request_id(i))])
        print(f"A {i}", flush=True)
        time.sleep(0.0005)
    print("done", flush=True)
    time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
