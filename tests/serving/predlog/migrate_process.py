"""A process that runs the startup migration path once a go-file appears (concurrency tests).

python -m tests.serving.predlog.migrate_process <database url> <go-file>
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from serving.predlog.log import is_postgres
from serving.predlog.postgres import PostgresStore
from serving.predlog.sqlite import SqliteStore


def main() -> int:
    url, go = sys.argv[1], Path(sys.argv[2])
    store = PostgresStore(url) if is_postgres(url) else SqliteStore(url)
    store.open()
    while not go.exists():
        time.sleep(0.001)
    try:
        store.prepare()
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
