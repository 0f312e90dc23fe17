"""Promotion, rollback and the promotion history, on real versions in a private registry."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from serving import artifact
from training import registry as reg
from training.data import load_builtin
from training.train import fit, save

NAME = "breast_cancer"


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A registry with three versions A, B, C and no current one (copied per test)."""
    root = tmp_path_factory.mktemp("three")
    dataset = load_builtin("breast_cancer")
    versions = [
        save(fit(dataset, seed=seed, cv_folds=0), dataset, root, name=NAME).name
        for seed in range(3)
    ]
    return root, versions


@pytest.fixture
def models(three_versions: tuple[Path, list[str]], tmp_path: Path) -> Path:
    return Path(shutil.copytree(three_versions[0], tmp_path / "models"))


@pytest.fixture
def versions(three_versions: tuple[Path, list[str]]) -> list[str]:
    return three_versions[1]


def test_promote_sets_current_and_records_history(models: Path, versions: list[str]) -> None:
    a, b, _ = versions
    reg.promote(models, NAME, a, reason="first")
    entry = reg.promote(models, NAME, b, reason="better")

    assert artifact.read_current(models, NAME) == b
    assert entry is not None
    assert (entry.action, entry.version, entry.previous) == ("promote", b, a)
    history = reg.read_history(models, NAME)
    assert [(e.version, e.previous, e.reason) for e in history] == [
        (a, None, "first"),
        (b, a, "better"),
    ]


def test_promoting_the_current_version_changes_nothing(models: Path, versions: list[str]) -> None:
    reg.promote(models, NAME, versions[0])

    assert reg.promote(models, NAME, versions[0]) is None
    assert len(reg.read_history(models, NAME)) == 1


def test_rollback_walks_back_through_promotions(models: Path, versions: list[str]) -> None:
    a, b, c = versions
    for version in versions:
        reg.promote(models, NAME, version)

    assert reg.rollback(models, NAME).version == b
    assert reg.rollback(models, NAME).version == a
    with pytest.raises(reg.RegistryError, match="no earlier promoted version"):
        reg.rollback(models, NAME)
    assert artifact.read_current(models, NAME) == a
    assert [e.action for e in reg.read_history(models, NAME)][-2:] == ["rollback", "rollback"]
    assert c in artifact.list_versions(models, NAME)  # rolled-back versions stay registered


def test_rollback_after_a_later_promotion_returns_to_it(models: Path, versions: list[str]) -> None:
    a, b, c = versions
    reg.promote(models, NAME, a)
    reg.promote(models, NAME, b)
    reg.rollback(models, NAME)  # back to a
    reg.promote(models, NAME, c)

    assert reg.rollback(models, NAME).version == a


def test_rollback_without_history_is_refused(models: Path, versions: list[str]) -> None:
    artifact.write_current(models, NAME, versions[0])  # set by hand, no history

    with pytest.raises(reg.RegistryError, match="no earlier promoted version"):
        reg.rollback(models, NAME)


def test_history_missing_its_last_entry_is_repaired_from_current(
    models: Path, versions: list[str]
) -> None:
    a, b, _ = versions
    reg.promote(models, NAME, a)
    artifact.write_current(models, NAME, b)  # a crash before the history append

    assert reg.promotion_stack(reg.read_history(models, NAME), b) == [a, b]
    assert reg.rollback(models, NAME).version == a


def test_promotion_stack_replays_rollbacks() -> None:
    def entry(action: str, version: str) -> reg.HistoryEntry:
        return reg.HistoryEntry.model_validate(
            {"at": datetime.now(UTC), "action": action, "version": version, "previous": None}
        )

    history = [entry("promote", "A"), entry("promote", "B"), entry("rollback", "A")]
    assert reg.promotion_stack([*history, entry("promote", "C")], "C") == ["A", "C"]


def test_promote_refuses_a_tampered_version(models: Path, versions: list[str]) -> None:
    a, b, _ = versions
    reg.promote(models, NAME, a)
    model = models / NAME / b / artifact.MODEL_FILE
    model.write_bytes(model.read_bytes()[:-1])

    with pytest.raises(artifact.DigestMismatchError):
        reg.promote(models, NAME, b)
    assert artifact.read_current(models, NAME) == a


def test_promote_refuses_an_unknown_version(models: Path) -> None:
    with pytest.raises(artifact.ArtifactNotFoundError, match="no version"):
        reg.promote(models, NAME, "20000101-000000-000000")


_PROMOTE_WITH_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from training import registry
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, (5, 5))
registry.promote(Path(sys.argv[1]), "breast_cancer", sys.argv[2])
"""


def test_crash_while_promoting_keeps_the_previous_current(
    models: Path, versions: list[str]
) -> None:
    a, b, _ = versions
    reg.promote(models, NAME, a)
    history = (models / NAME / reg.HISTORY_FILE).read_bytes()

    child = subprocess.run(
        [sys.executable, "-c", _PROMOTE_WITH_FILE_SIZE_LIMIT, models, b],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert child.returncode == -signal.SIGXFSZ, child.stderr
    assert artifact.read_current(models, NAME) == a
    assert (models / NAME / reg.HISTORY_FILE).read_bytes() == history


def test_rows_list_every_version_and_mark_the_current_one(
    models: Path, versions: list[str]
) -> None:
    reg.promote(models, NAME, versions[1])

    rows = reg.rows(models, NAME)

    assert [r.version for r in rows] == versions
    assert [r.current for r in rows] == [False, True, False]
    assert all(r.metadata is not None for r in rows)
