"""Loading trusts only what training wrote: digests before deserialising, versions,
signatures, the trust policy (skops types, pickles), and saving is atomic even when the
process dies half way."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving import artifact
from training.data import load_builtin
from training.train import fit, save

KEY = b"test-signing-key"


class _Marker:
    """Unpickling this calls ``open(path, "w")``: a stand-in for any code a pickle can run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


@pytest.fixture
def registry(models_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the shared registry (one current breast_cancer version)."""
    return Path(shutil.copytree(models_dir, tmp_path / "models"))


def _current(registry: Path) -> Path:
    return artifact.resolve(registry, "breast_cancer")


def _edit_metadata(version: Path, **changes: object) -> None:
    path = version / artifact.METADATA_FILE
    data = json.loads(path.read_text())
    for dotted, value in changes.items():
        target = data
        *parents, leaf = dotted.split("__")
        for part in parents:
            target = target[part]
        target[leaf] = value
    path.write_text(json.dumps(data))


def test_load_returns_the_pipeline_that_was_saved(registry: Path) -> None:
    loaded = artifact.load(_current(registry))
    assert loaded.metadata.name == "breast_cancer"
    assert (loaded.metadata.format, loaded.metadata.model_file) == ("skops", "model.skops")
    assert loaded.digest == hashlib.sha256((loaded.path / "model.skops").read_bytes()).hexdigest()
    assert loaded.metadata.fingerprint is not None
    assert loaded.metadata.fingerprint.startswith("sha256:")
    assert not (loaded.path / "model.joblib").exists()


def test_flipped_byte_is_refused_naming_file_and_digests(registry: Path) -> None:
    version = _current(registry)
    model = version / artifact.MODEL_FILE
    expected = artifact.read_metadata(version).files[artifact.MODEL_FILE]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()

    with pytest.raises(artifact.DigestMismatchError) as caught:
        artifact.load(version)

    assert (caught.value.path, caught.value.expected, caught.value.actual) == (
        model,
        expected,
        actual,
    )
    assert str(model) in str(caught.value)
    assert expected in str(caught.value)
    assert actual in str(caught.value)


def test_malicious_pickle_is_refused_before_unpickling(registry: Path, tmp_path: Path) -> None:
    version = _current(registry)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Marker(marker))
    (version / artifact.MODEL_FILE).write_bytes(payload)

    with pytest.raises(artifact.DigestMismatchError) as caught:
        artifact.load(version)

    assert caught.value.actual == hashlib.sha256(payload).hexdigest()
    assert not marker.exists(), "the pickle was unpickled before its digest was checked"
    # The payload is live: unpickling it (which load must never do) creates the marker.
    pickle.loads(payload).close()
    assert marker.exists()


def test_truncated_model_is_refused(registry: Path) -> None:
    version = _current(registry)
    model = version / artifact.MODEL_FILE
    model.write_bytes(model.read_bytes()[:100])

    with pytest.raises(artifact.DigestMismatchError, match="truncated"):
        artifact.load(version)


def test_missing_model_file_is_refused(registry: Path) -> None:
    version = _current(registry)
    (version / artifact.MODEL_FILE).unlink()

    with pytest.raises(artifact.ArtifactError, match="missing"):
        artifact.load(version)


def test_scikit_learn_version_mismatch_is_refused(registry: Path) -> None:
    version = _current(registry)
    _edit_metadata(version, libraries__scikit_learn="0.24.2")

    with pytest.raises(artifact.LibraryVersionMismatchError) as caught:
        artifact.load(version)

    assert "0.24.2" in str(caught.value)
    assert artifact.installed_versions().scikit_learn in str(caught.value)


def test_scikit_learn_version_mismatch_loads_when_overridden(registry: Path) -> None:
    version = _current(registry)
    _edit_metadata(version, libraries__scikit_learn="0.24.2")

    loaded = artifact.load(version, allow_version_mismatch=True)

    assert loaded.metadata.libraries.scikit_learn == "0.24.2"
    assert loaded.pipeline.predict([[f.mean for f in loaded.metadata.features]]).shape == (1,)


@pytest.fixture
def signed(tmp_path: Path) -> Path:
    dataset = load_builtin("iris")
    return save(
        fit(dataset, cv_folds=0), dataset, tmp_path / "signed", name="iris", signing_key=KEY
    )


def test_signed_artifact_loads_with_its_key(signed: Path) -> None:
    assert artifact.load(signed, signing_key=KEY).metadata.signature is not None


def test_tampered_signed_metadata_is_refused(signed: Path) -> None:
    _edit_metadata(signed, metrics__balanced_accuracy=1.0)

    with pytest.raises(artifact.SignatureError, match="does not match"):
        artifact.load(signed, signing_key=KEY)


def test_rewritten_model_and_digest_are_refused_with_a_key(signed: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Marker(marker))
    (signed / artifact.MODEL_FILE).write_bytes(payload)
    _edit_metadata(signed, files={artifact.MODEL_FILE: hashlib.sha256(payload).hexdigest()})

    with pytest.raises(artifact.SignatureError):
        artifact.load(signed, signing_key=KEY)
    assert not marker.exists()


def test_wrong_key_is_refused(signed: Path) -> None:
    with pytest.raises(artifact.SignatureError):
        artifact.load(signed, signing_key=b"another key")


def test_unsigned_metadata_is_refused_when_a_key_is_configured(registry: Path) -> None:
    with pytest.raises(artifact.SignatureError, match="unsigned"):
        artifact.load(_current(registry), signing_key=KEY)


# A child that trains, caps its file size (RLIMIT_FSIZE) and saves: the kernel kills it
# with SIGXFSZ in the middle of a write, exactly like a crash at that instant. To crash in
# metadata.json (written after the larger model file), the cap is set just before that write.
_SAVE_WITH_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from serving.artifact import store
from training.data import load_builtin
from training.train import fit, save
root, limit, die, where = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "die", sys.argv[4]
dataset = load_builtin("iris")
trained = fit(dataset, cv_folds=0)
if die:
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it by default
write = store.write_synced
def capped(path, data):
    if path.name == where:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    write(path, data)
store.write_synced = capped
save(trained, dataset, root, name="breast_cancer")
"""


def _save_in_child(
    root: Path, limit: int, *, die: bool, where: str = "model.skops"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            _SAVE_WITH_FILE_SIZE_LIMIT,
            root,
            str(limit),
            "die" * die or "raise",
            where,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def iris_sizes(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, int]:
    """(model file, metadata.json) sizes of the iris version the child saves."""
    dataset = load_builtin("iris")
    version = save(fit(dataset, cv_folds=0), dataset, tmp_path_factory.mktemp("iris"), name="x")
    meta = artifact.read_metadata(version)
    return (
        (version / meta.model_file).stat().st_size,
        (version / artifact.METADATA_FILE).stat().st_size,
    )


@pytest.mark.parametrize("crash_in", ["model.skops", "metadata.json"])
def test_crash_mid_save_leaves_no_visible_version(
    registry: Path, crash_in: str, iris_sizes: tuple[int, int]
) -> None:
    model_size, metadata_size = iris_sizes
    limit = (model_size if crash_in == "model.skops" else metadata_size) // 2
    before = artifact.list_versions(registry, "breast_cancer")
    current = _current(registry)

    child = _save_in_child(registry, limit, die=True, where=crash_in)

    assert child.returncode == -signal.SIGXFSZ, child.stderr
    staging = [p for p in (registry / "breast_cancer").iterdir() if p.name.startswith(".incoming")]
    assert len(staging) == 1, "the child did not die in the middle of saving"
    assert (staging[0] / crash_in).stat().st_size == limit  # cut short, mid-file
    assert artifact.list_versions(registry, "breast_cancer") == before
    assert _current(registry) == current
    with pytest.raises(artifact.ArtifactNotFoundError):
        artifact.resolve(registry, "breast_cancer", staging[0].name)


def test_failed_save_leaves_nothing_behind(registry: Path, iris_sizes: tuple[int, int]) -> None:
    before = sorted(p.name for p in (registry / "breast_cancer").iterdir())

    child = _save_in_child(registry, iris_sizes[0] // 2, die=False)

    assert child.returncode == 1
    assert "File too large" in child.stderr
    assert sorted(p.name for p in (registry / "breast_cancer").iterdir()) == before


def test_next_save_removes_a_staging_folder_left_by_an_old_crash(
    registry: Path, iris_sizes: tuple[int, int]
) -> None:
    child = _save_in_child(registry, iris_sizes[0] // 2, die=True)
    assert child.returncode == -signal.SIGXFSZ
    (leftover,) = (registry / "breast_cancer").glob(".incoming-*")
    day_ago = time.time() - artifact.STALE_STAGING_SECONDS - 60
    os.utime(leftover, (day_ago, day_ago))
    dataset = load_builtin("breast_cancer")

    save(fit(dataset, cv_folds=0), dataset, registry, name="breast_cancer")

    assert not leftover.exists()
