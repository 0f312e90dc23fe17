"""The manifests under deploy/, read as Kubernetes would read them, for the tests beside this.

``kubernetes-validate`` checks core kinds against the Kubernetes API's OpenAPI schemas in
strict mode (unknown fields fail); the InferenceService, a KServe custom resource it has no
schema for, is checked against the InferenceService CRD's own schema, vendored from KServe
(schemas/README.md), made strict the same way. kustomizations are rendered by
``kubectl kustomize`` where kubectl exists.
"""

from __future__ import annotations

import copy
import gzip
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KSERVE = DEPLOY / "kserve"

# The Kubernetes minor versions the manifests must be valid for: 1.33 is the oldest we claim
# (docs/kubernetes.md), 1.37 the newest kubernetes-validate 1.37.0 ships schemas for.
KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35", "1.36", "1.37")

KSERVE_SCHEMA = (
    Path(__file__).with_name("schemas") / "kserve-v0.20.0-inferenceservice-v1beta1.json.gz"
)
KSERVE_KIND = ("serving.kserve.io/v1beta1", "InferenceService")

# Every kustomization and what it renders (the root is the default).
KUSTOMIZATIONS = {
    "deploy/kubernetes": KUBERNETES,
    "deploy/kubernetes/deployment": KUBERNETES / "deployment",
    "deploy/kserve": KSERVE,
}

Doc = dict[str, Any]


def manifest_files() -> list[Path]:
    """Every YAML file under deploy/ that holds Kubernetes objects (not kustomizations)."""
    return sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[Doc]:
    """The objects of one multi-document YAML file, empty documents left out."""
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def one(path: Path, kind: str, name: str | None = None) -> Doc:
    """The single object of ``kind`` (and ``name``) in ``path``."""
    found = [
        doc
        for doc in documents(path)
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{path}: {len(found)} {kind} {name or ''}"
    return found[0]


def kubectl() -> str | None:
    return shutil.which("kubectl")


def kustomize(directory: Path) -> list[Doc]:
    """``kubectl kustomize DIR``: what ``kubectl apply -k DIR`` would send."""
    binary = kubectl()
    assert binary is not None
    done = subprocess.run(
        [binary, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def is_kserve(doc: Doc) -> bool:
    return (doc.get("apiVersion"), doc.get("kind")) == KSERVE_KIND


def pod_spec(doc: Doc) -> Doc:
    """The pod spec of a workload (Deployment, StatefulSet, Job, Pod, InferenceService)."""
    if doc["kind"] == "Pod":
        return dict(doc["spec"])
    if is_kserve(doc):
        return dict(doc["spec"]["predictor"])
    return dict(doc["spec"]["template"]["spec"])


def env_of(container: Doc) -> dict[str, Doc]:
    """A container's ``env`` by name."""
    return {item["name"]: item for item in container.get("env", [])}


def _strict(schema: Any) -> Any:
    """A copy of an OpenAPI schema in which objects with known properties allow no others.

    The API server prunes unknown fields of a custom resource (and rejects them with
    ``kubectl apply --validate=strict``); jsonschema would accept them silently.
    """
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _kserve_validator() -> jsonschema.protocols.Validator:
    schema = _strict(json.loads(gzip.decompress(KSERVE_SCHEMA.read_bytes())))
    # A CRD's schema is OpenAPI v3.0's subset of JSON Schema, close to draft 4.
    validator: jsonschema.protocols.Validator = jsonschema.Draft4Validator(schema)
    return validator


def kserve_errors(doc: Doc) -> list[str]:
    """What the InferenceService CRD's schema (strict) finds wrong with ``doc``."""
    found = _kserve_validator().iter_errors(copy.deepcopy(doc))
    return [f"{'.'.join(map(str, error.path))}: {error.message}" for error in found]
