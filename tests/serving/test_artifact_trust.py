"""The trust policy: loading a version never runs code the operator did not allow.

The attack of the hardening issue: replace a version's model with a pickle whose
``__reduce__`` runs a shell command, and put its sha256 in metadata.json. Under default
settings loading refuses it before unpickling: the command never runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from serving import artifact
from serving.artifact import trust
from serving.model import LoadedModel
from tests.serving.conftest import make_settings
from tests.training.steps import log_mass
from training.data import load_builtin
from training.train import build_metadata, fit

KEY = b"test-signing-key"
Iris = tuple[object, artifact.Metadata]


class _Shell:
    """Unpickling this runs a shell command that writes ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"echo pwned > {self.path}",))


@pytest.fixture(scope="module")
def iris() -> Iris:
    dataset = load_builtin("iris")
    trained = fit(dataset, cv_folds=0)
    return trained.pipeline, build_metadata(trained, dataset, name="iris")


def _save(root: Path, iris: Iris, **options: Any) -> Path:
    model, metadata = iris
    return artifact.save(root, metadata, model, **options)


def _plant(version: Path, filename: str, payload: bytes, **changes: object) -> None:
    """Write ``payload`` as the model and make metadata.json agree (an attacker's edit)."""
    (version / filename).write_bytes(payload)
    path = version / artifact.METADATA_FILE
    data = json.loads(path.read_text())
    data["files"] = {filename: hashlib.sha256(payload).hexdigest()}
    data.update(changes)
    path.write_text(json.dumps(data))


def test_a_pickle_with_its_digest_rewritten_never_runs(tmp_path: Path, iris: Iris) -> None:
    version = _save(tmp_path / "m", iris, format="joblib")
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Shell(marker))
    _plant(version, "model.joblib", payload)

    with pytest.raises(artifact.ArtifactError, match="MODEL_ALLOW_PICKLE") as caught:
        artifact.load(version)

    assert "convert" in str(caught.value)
    assert not marker.exists(), "the pickle ran"
    pickle.loads(payload)  # the payload is live: what load must never do
    assert marker.exists()


def test_a_skops_version_replaced_by_a_pickle_never_runs(tmp_path: Path, iris: Iris) -> None:
    version = _save(tmp_path / "m", iris)
    marker = tmp_path / "pwned"
    _plant(version, "model.joblib", pickle.dumps(_Shell(marker)), format="joblib")

    with pytest.raises(artifact.ArtifactError, match="MODEL_ALLOW_PICKLE"):
        artifact.load(version)
    assert not marker.exists()


def test_a_joblib_version_loads_with_the_opt_in_and_warns_each_time(
    tmp_path: Path, iris: Iris, caplog: pytest.LogCaptureFixture
) -> None:
    version = _save(tmp_path / "m", iris, format="joblib")

    with caplog.at_level(logging.WARNING, logger="serving.artifact"):
        for _ in range(2):
            assert artifact.load(version, allow_pickle=True).metadata.format == "joblib"

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all(str(version / "model.joblib") in r.getMessage() for r in warnings)


def test_a_signed_joblib_version_loads_without_the_opt_in(
    tmp_path: Path, iris: Iris, caplog: pytest.LogCaptureFixture
) -> None:
    version = _save(tmp_path / "m", iris, format="joblib", signing_key=KEY)

    with caplog.at_level(logging.WARNING, logger="serving.artifact"):
        artifact.load(version, signing_key=KEY)

    assert caplog.records == []
    with pytest.raises(artifact.ArtifactError, match="MODEL_ALLOW_PICKLE"):
        artifact.load(version)


@pytest.fixture
def shell_function(tmp_path: Path, iris: Iris) -> Path:
    """A version whose skops model needs ``posix.system`` (its registrant trusted it)."""
    _, metadata = iris
    return artifact.save(
        tmp_path / "m", metadata, FunctionTransformer(os.system), trusted=["posix.system"]
    )


def test_an_untrusted_recorded_type_is_refused_naming_it_and_the_setting(
    shell_function: Path,
) -> None:
    assert artifact.read_metadata(shell_function).trusted_types == ["posix.system"]

    with pytest.raises(artifact.UntrustedTypeError) as caught:
        artifact.load(shell_function)

    assert caught.value.types == ["posix.system"]
    assert "posix.system" in str(caught.value)
    assert "MODEL_TRUSTED_TYPES" in str(caught.value)


def test_the_operator_or_a_signature_can_trust_a_recorded_type(
    shell_function: Path, tmp_path: Path, iris: Iris
) -> None:
    assert artifact.load(shell_function, trusted_types=["posix.system"]).pipeline.func is os.system
    assert artifact.load(shell_function, trusted_types=["posix.*"]).pipeline.func is os.system
    signed = artifact.save(
        tmp_path / "s", iris[1], FunctionTransformer(os.system), trusted=["posix.system"],
        signing_key=KEY,
    )  # fmt: skip
    assert artifact.load(signed, signing_key=KEY).pipeline.func is os.system


def test_a_type_missing_from_the_recorded_list_is_refused_by_skops(
    tmp_path: Path, iris: Iris
) -> None:
    version = _save(tmp_path / "m", iris)
    _plant(version, "model.skops", sio.dumps(FunctionTransformer(os.system)))

    with pytest.raises(artifact.ArtifactError, match="does not record as trusted"):
        artifact.load(version)


def test_saving_a_model_with_an_unnamed_custom_type_writes_nothing(
    tmp_path: Path, iris: Iris
) -> None:
    with pytest.raises(artifact.UntrustedTypeError, match=r"posix\.system"):
        artifact.save(tmp_path / "m", iris[1], FunctionTransformer(os.system))

    assert artifact.list_models(tmp_path / "m") == []


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", True),
        ("numpy.dtype", True),
        ("numpy.log1p", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("functools.partial", True),
        ("sklearn.utils.validation.check_array", True),
        ("sklearn.utils.validation.check_is_fitted", False),
        ("posix.system", False),
        ("builtins.eval", False),
        ("numpy.load", False),
        ("sklearn.utils._testing.TempMemmap", False),
        ("sklearn.__main__.x", False),
        ("sklearn.nowhere.Nothing", False),
        ("tests.training.steps.BillRatio", False),
    ],
)
def test_the_safe_list(name: str, safe: bool) -> None:
    assert trust.is_safe(name) is safe


def test_operator_patterns_match_exact_names_and_modules() -> None:
    patterns = trust.check_patterns(["pkg.steps.Ratio", " other.* "])

    assert trust.allowed_by("pkg.steps.Ratio", patterns)
    assert not trust.allowed_by("pkg.steps.Ratio2", patterns)
    assert trust.allowed_by("other.deep.Thing", patterns)
    assert not trust.allowed_by("otherwise.Thing", patterns)
    with pytest.raises(ValueError, match="not a type name"):
        trust.check_patterns(["os.system; rm"])


def test_the_service_settings_reach_the_trust_policy(tmp_path: Path, iris: Iris) -> None:
    model = make_pipeline(FunctionTransformer(log_mass), LogisticRegression(max_iter=1000))
    dataset = load_builtin("iris")
    model.fit(dataset.X, dataset.y)
    root = tmp_path / "m"
    fresh = iris[1].model_copy(update={"version": artifact.new_version()})
    own = artifact.save(root, fresh, model, trusted=["tests.training.steps.log_mass"])
    artifact.write_current(root, "iris", own.name)
    pickled = _save(root, iris, format="joblib")

    with pytest.raises(artifact.UntrustedTypeError, match="MODEL_TRUSTED_TYPES"):
        LoadedModel.load(make_settings(root, tmp_path, model_name="iris"), "iris", None)
    allowed = make_settings(root, tmp_path, model_name="iris", model_trusted_types="tests.*")
    assert LoadedModel.load(allowed, "iris", None).version == own.name
    with pytest.raises(artifact.ArtifactError, match="MODEL_ALLOW_PICKLE"):
        LoadedModel.load(make_settings(root, tmp_path, model_name="iris"), "iris", pickled.name)
    opted_in = make_settings(root, tmp_path, model_name="iris", model_allow_pickle=True)
    assert LoadedModel.load(opted_in, "iris", pickled.name).version == pickled.name
