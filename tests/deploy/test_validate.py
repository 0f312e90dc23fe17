"""Every manifest under deploy/ is valid for the Kubernetes versions we claim, offline.

Core kinds: kubernetes-validate, strict (an unknown or misspelt field fails), for each of
KUBERNETES_VERSIONS. The KServe InferenceService: the CRD's schema of KServe v0.20.0, made
strict. Neither proves that a cluster admits the objects (admission webhooks, quotas, storage
classes, KServe's own defaulting) or that they work together: tests/kube plays the serve pod.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from tests.deploy.manifests import (
    DEPLOY,
    KUBERNETES_VERSIONS,
    KUSTOMIZATIONS,
    ROOT,
    Doc,
    documents,
    is_kserve,
    kserve_errors,
    kubectl,
    kustomize,
    manifest_files,
    one,
)


def validate(doc: Doc, version: str) -> None:
    """kubernetes-validate in strict mode; raises with the offending field's path."""
    kubernetes_validate.validate(doc, version, strict=True)


def core_docs() -> list[tuple[str, Doc]]:
    return [
        (f"{path.relative_to(DEPLOY)}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for path in manifest_files()
        for doc in documents(path)
        if not is_kserve(doc)
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("where", "doc"), core_docs(), ids=[w for w, _ in core_docs()])
def test_manifest_is_valid_for_the_kubernetes_api(where: str, doc: Doc, version: str) -> None:
    validate(doc, version)


def test_every_manifest_is_checked_by_one_of_the_two_validators() -> None:
    kinds = {(doc["apiVersion"], doc["kind"]) for p in manifest_files() for doc in documents(p)}

    unknown = []
    for api_version, kind in kinds - {("serving.kserve.io/v1beta1", "InferenceService")}:
        probe = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}
        try:
            validate(probe, KUBERNETES_VERSIONS[0])
        except kubernetes_validate.SchemaNotFoundError:
            unknown.append(kind)
        except kubernetes_validate.ValidationError:
            pass  # a schema exists (the probe lacks required fields)
    assert unknown == []


def test_strict_validation_rejects_a_misspelt_field() -> None:
    doc = copy.deepcopy(one(DEPLOY / "kubernetes/serve-statefulset.yaml", "StatefulSet"))
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")

    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        validate(doc, KUBERNETES_VERSIONS[0])


def test_inferenceservice_is_valid_for_the_kserve_crd_schema() -> None:
    doc = one(DEPLOY / "kserve/inferenceservice.yaml", "InferenceService")

    assert kserve_errors(doc) == []


def test_inferenceservice_metadata_is_valid_object_meta() -> None:
    # The CRD's schema says only `metadata: object`; the API server checks it as ObjectMeta.
    doc = one(DEPLOY / "kserve/inferenceservice.yaml", "InferenceService")
    holder = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}

    validate(holder, KUBERNETES_VERSIONS[0])


def test_kserve_schema_rejects_a_misspelt_container_field() -> None:
    doc = copy.deepcopy(one(DEPLOY / "kserve/inferenceservice.yaml", "InferenceService"))
    doc["spec"]["predictor"]["containers"][0]["livenesProbe"] = {}

    assert any("livenesProbe" in error for error in kserve_errors(doc))


def test_kserve_schema_rejects_a_wrong_type() -> None:
    doc = copy.deepcopy(one(DEPLOY / "kserve/inferenceservice.yaml", "InferenceService"))
    doc["spec"]["predictor"]["minReplicas"] = "two"

    assert any(error.startswith("spec.predictor.minReplicas") for error in kserve_errors(doc))


needs_kubectl = pytest.mark.skipif(
    kubectl() is None, reason="kubectl not on PATH: kustomizations not rendered"
)


@needs_kubectl
@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_kustomization_renders_valid_objects(name: str) -> None:
    rendered = kustomize(KUSTOMIZATIONS[name])

    assert rendered
    for doc in rendered:
        if is_kserve(doc):
            assert kserve_errors(doc) == []
        else:
            for version in (KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]):
                validate(doc, version)


@needs_kubectl
def test_every_manifest_file_is_in_a_kustomization() -> None:
    rendered = {
        (doc["kind"], doc["metadata"]["name"])
        for directory in KUSTOMIZATIONS.values()
        for doc in kustomize(directory)
    }
    example = DEPLOY / "kubernetes/secret.example.yaml"  # never applied as it is

    missing = [
        f"{path.relative_to(ROOT)}: {doc['kind']}/{doc['metadata']['name']}"
        for path in manifest_files()
        if path != example
        for doc in documents(path)
        if (doc["kind"], doc["metadata"]["name"]) not in rendered
    ]
    assert missing == []
