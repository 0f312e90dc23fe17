"""The labels' spool (serving/predlog/labels.py): whole requests or nothing, at its cap."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from serving.predlog.feedback import FeedbackRecord
from serving.predlog.labels import LabelSpool, read_labels
from serving.predlog.records import LogFullError, LogUnavailableError

RID = "0193a9e2-5b1c-7d4e-8f00-3c2b1a0f9e8d"


def _records(n: int) -> list[FeedbackRecord]:
    return [FeedbackRecord(RID, i, "benign", time.time(), "alice") for i in range(n)]


def test_appended_labels_read_back_and_a_torn_line_is_counted(tmp_path: Path) -> None:
    spool = LabelSpool(tmp_path, 1 << 20)
    spool.open()
    spool.append(_records(3))
    [path] = spool.take()
    with path.open("ab") as handle:
        handle.write(b'["' + RID.encode() + b'", 9, "beni')  # a write cut by a crash
    records, bad = read_labels(path)
    assert [(r.request_id, r.row_index, r.label, r.client_id) for r in records] == [
        (RID, i, "benign", "alice") for i in range(3)
    ]
    assert bad == 1
    spool.remove(path)
    assert spool.spooled_bytes == 0
    assert not spool.pending()


def test_a_request_over_the_cap_is_refused_whole(tmp_path: Path) -> None:
    spool = LabelSpool(tmp_path, 400)
    spool.open()
    spool.append(_records(2))
    with pytest.raises(LogFullError):
        spool.append(_records(5))
    assert sum(len(read_labels(p)[0]) for p in spool.take()) == 2


def test_files_left_by_an_earlier_process_are_taken_and_a_closed_spool_refuses(
    tmp_path: Path,
) -> None:
    first = LabelSpool(tmp_path, 1 << 20)
    first.open()
    first.append(_records(2))
    first.close()
    with pytest.raises(LogUnavailableError):
        first.append(_records(1))
    second = LabelSpool(tmp_path, 1 << 20)
    second.open()
    assert second.pending()
    assert sum(len(read_labels(p)[0]) for p in second.take()) == 2
