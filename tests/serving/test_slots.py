"""Spool slots: a change of WORKERS never orphans a segment (serving/slots.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving import slots
from serving.predlog.spool import LEGACY_SUFFIX, Spool, SpoolLockedError
from tests.serving.predlog.helpers import make_record


def _segment(folder: Path, name: int, text: str = "rows") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name:020d}.skb"
    path.write_text(text)
    return path


def _contents(folders: list[Path]) -> dict[str, list[str]]:
    return {f.name: sorted(p.read_text() for p in f.glob("*.skb")) for f in folders}


def test_segments_an_older_version_left_are_adopted_too(tmp_path: Path) -> None:
    old = tmp_path / "slot-1" / f"{1:020d}{LEGACY_SUFFIX}"
    old.parent.mkdir()
    old.write_text("old rows")

    slots.claim(tmp_path, 1).release()

    assert [p.read_text() for p in tmp_path.glob(f"*{LEGACY_SUFFIX}")] == ["old rows"]


def test_one_process_adopts_every_slot_folder(tmp_path: Path) -> None:
    _segment(tmp_path / "slot-0", 1, "a")
    _segment(tmp_path / "slot-3", 2, "b")
    _segment(tmp_path, 3, "c")

    slots.claim(tmp_path, 1).release()

    assert sorted(p.read_text() for p in tmp_path.glob("*.skb")) == ["a", "b", "c"]
    assert not (tmp_path / "slot-0").exists()
    assert not (tmp_path / "slot-3").exists()


def test_workers_adopt_the_unslotted_spool_and_slots_beyond_their_number(tmp_path: Path) -> None:
    for name, text in enumerate("abc"):
        _segment(tmp_path, name, text)
    _segment(tmp_path / "slot-0", 10, "kept")
    _segment(tmp_path / "slot-2", 11, "d")

    slots.claim(tmp_path, 2).release()

    moved = _contents([tmp_path / "slot-0", tmp_path / "slot-1"])
    assert sorted(moved["slot-0"] + moved["slot-1"]) == ["a", "b", "c", "d", "kept"]
    assert moved["slot-1"]  # spread over the slots, so each worker drains a share
    assert list(tmp_path.glob("*.skb")) == []
    assert not (tmp_path / "slot-2").exists()


def test_a_live_process_in_a_leftover_slot_stops_the_start_and_moves_nothing(
    tmp_path: Path,
) -> None:
    _segment(tmp_path, 1, "a")
    live = Spool(tmp_path / "slot-5", 1 << 20, 1 << 16)
    live.open()
    try:
        with pytest.raises(SpoolLockedError, match="in use by another server process"):
            slots.claim(tmp_path, 2)
    finally:
        live.close()
    assert [p.read_text() for p in tmp_path.glob("*.skb")] == ["a"]


def test_a_live_process_in_a_slot_to_open_stops_the_start(tmp_path: Path) -> None:
    live = Spool(tmp_path / "slot-1", 1 << 20, 1 << 16)
    live.open()
    try:
        with pytest.raises(SpoolLockedError):
            slots.claim(tmp_path, 2)
    finally:
        live.close()


def test_the_claim_keeps_other_servers_off_the_spool_folder(tmp_path: Path) -> None:
    claim = slots.claim(tmp_path, 2)
    try:
        with pytest.raises(SpoolLockedError):
            slots.claim(tmp_path, 1)
        with pytest.raises(SpoolLockedError):
            Spool(tmp_path, 1 << 20, 1 << 16).open()  # a one-process server
    finally:
        claim.release()
    slots.claim(tmp_path, 1).release()


def test_a_segment_whose_name_is_taken_keeps_its_rows_under_the_next_name(
    tmp_path: Path,
) -> None:
    _segment(tmp_path / "slot-0", 7, "old")
    _segment(tmp_path, 7, "unslotted")

    slots.claim(tmp_path, 1).release()

    assert {p.name: p.read_text() for p in tmp_path.glob("*.skb")} == {
        f"{7:020d}.skb": "unslotted",
        f"{8:020d}.skb": "old",
    }


def test_adopted_segments_are_replayed_by_the_spool_that_opens_them(tmp_path: Path) -> None:
    earlier = Spool(tmp_path / "slot-4", 1 << 20, 1 << 16)
    earlier.open()
    earlier.append([make_record(rows=2)])
    earlier.close()

    slots.claim(tmp_path, 2).release()
    spools = [Spool(slots.slot_dir(tmp_path, k), 1 << 20, 1 << 16) for k in range(2)]
    for spool in spools:
        spool.open()
    try:
        assert sum(spool.leftover_rows for spool in spools) == 2
    finally:
        for spool in spools:
            spool.close()


def test_label_files_are_adopted_with_the_segments(tmp_path: Path) -> None:
    (tmp_path / "slot-3").mkdir()
    (tmp_path / "slot-3" / f"{5:020d}.labels").write_text("labels\n")
    (tmp_path / f"{6:020d}.labels").write_text("more\n")

    slots.claim(tmp_path, 2).release()

    adopted = [p.read_text() for k in range(2) for p in slots.slot_dir(tmp_path, k).glob("*")]
    assert sorted(t for t in adopted if t.endswith("\n")) == ["labels\n", "more\n"]
    assert not (tmp_path / "slot-3").exists()
    assert list(tmp_path.glob("*.labels")) == []
