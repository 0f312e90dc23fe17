"""The contracts the manifests keep, checked statically (docs/kubernetes.md states them).

Shutdown inside the grace period, a spool cap below its volume, hardened pods, least-privilege
database roles, no committed secret values, settings that exist, and the StatefulSet and the
Deployment running the same pod but for the spool.
"""

from __future__ import annotations

import copy
import re

import pytest

from serving.artifact.layout import CURRENT_POINTER
from serving.settings import Settings
from tests.deploy.manifests import (
    DEPLOY,
    KUSTOMIZATIONS,
    Doc,
    documents,
    env_of,
    kubectl,
    kustomize,
    manifest_files,
    one,
    pod_spec,
)
from training.cli import EXIT_GATE, EXIT_USAGE
from training.settings import TrainingSettings

STATEFULSET = DEPLOY / "kubernetes/serve-statefulset.yaml"
DEPLOYMENT = DEPLOY / "kubernetes/deployment/serve-deployment.yaml"
INFERENCESERVICE = DEPLOY / "kserve/inferenceservice.yaml"
CONFIGMAP = DEPLOY / "kubernetes/base/configmap.yaml"
TRAIN = DEPLOY / "kubernetes/base/train-job.yaml"
MIGRATE = DEPLOY / "kubernetes/base/migrate-job.yaml"
SECRET_EXAMPLE = DEPLOY / "kubernetes/secret.example.yaml"

# Seconds between the end of DRAIN_SECONDS and SIGKILL that the shutdown arithmetic keeps
# for the interpreter's exit (the server's own deadline is DRAIN_SECONDS).
SHUTDOWN_MARGIN = 5

# Environment variables that are not Settings fields, and why.
NOT_SETTINGS = {
    "WORKERS": "serve --workers (issue 15, item 1) is being built in another branch",
    "PROTOCOL": "KServe reads it: the custom container's protocol",
}

SERVE_WORKLOADS = {
    "statefulset": (STATEFULSET, "StatefulSet"),
    "deployment": (DEPLOYMENT, "Deployment"),
    "inferenceservice": (INFERENCESERVICE, "InferenceService"),
}


def serve(name: str) -> Doc:
    path, kind = SERVE_WORKLOADS[name]
    return one(path, kind)


def container(doc: Doc, name: str | None = None) -> Doc:
    containers = pod_spec(doc)["containers"]
    if name is None:
        assert len(containers) == 1
        return dict(containers[0])
    (found,) = [c for c in containers if c["name"] == name]
    return dict(found)


def quantity_bytes(text: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "": 1}
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|)", text)
    assert match, text
    return int(match[1]) * units[match[2]]


def config_data() -> dict[str, str]:
    return dict(one(CONFIGMAP, "ConfigMap")["data"])


def all_pod_workloads() -> dict[str, Doc]:
    return {
        **{name: serve(name) for name in SERVE_WORKLOADS},
        "train": one(TRAIN, "Job"),
        "migrate": one(MIGRATE, "Job"),
    }


@pytest.mark.parametrize("name", list(SERVE_WORKLOADS))
def test_shutdown_fits_in_the_grace_period(name: str) -> None:
    doc = serve(name)
    spec = pod_spec(doc)
    serving = container(doc)
    pre_stop = serving["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(env_of(serving)["DRAIN_SECONDS"]["value"])

    assert pre_stop + drain + SHUTDOWN_MARGIN <= spec["terminationGracePeriodSeconds"]


def test_statefulset_and_deployment_run_the_same_pod_but_for_the_spool() -> None:
    stateful = copy.deepcopy(serve("statefulset")["spec"]["template"])
    stateless = copy.deepcopy(serve("deployment")["spec"]["template"])
    # The StatefulSet's spool is a volumeClaimTemplate, fsynced; the Deployment's an emptyDir.
    stateful_env = stateful["spec"]["containers"][0]["env"]
    stateful_env.remove({"name": "SPOOL_FSYNC_INTERVAL_SECONDS", "value": "0.05"})
    stateless["spec"]["volumes"] = [v for v in stateless["spec"]["volumes"] if v["name"] != "spool"]

    assert stateful == stateless
    assert [
        t["metadata"]["name"] for t in serve("statefulset")["spec"]["volumeClaimTemplates"]
    ] == ["spool"]


@pytest.mark.parametrize("name", list(SERVE_WORKLOADS))
def test_the_spool_cap_fits_its_volume(name: str) -> None:
    doc = serve(name)
    cap = int(config_data()["SPOOL_MAX_BYTES"])
    volumes = {v["name"]: v for v in pod_spec(doc).get("volumes", [])}
    if "spool" in volumes:
        size = volumes["spool"]["emptyDir"]["sizeLimit"]
    else:
        (claim,) = doc["spec"]["volumeClaimTemplates"]
        size = claim["spec"]["resources"]["requests"]["storage"]
    mounts = {m["name"]: m["mountPath"] for m in container(doc)["volumeMounts"]}

    assert 2 * cap <= quantity_bytes(size)
    assert env_of(container(doc))["SPOOL_DIR"]["value"].startswith(mounts["spool"] + "/")


@pytest.mark.parametrize("name", ["statefulset", "deployment"])
def test_probes_are_health_ready_and_a_startup_probe(name: str) -> None:
    serving = container(serve(name))

    assert serving["livenessProbe"]["httpGet"]["path"] == "/health"
    assert serving["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert serving["startupProbe"]["httpGet"]["path"] == "/health"


def test_inferenceservice_probes_speak_the_open_inference_protocol() -> None:
    serving = container(serve("inferenceservice"))

    assert serving["name"] == "kserve-container"
    assert env_of(serving)["PROTOCOL"]["value"] == "v2"
    assert serving["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert serving["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert serving["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert [p["containerPort"] for p in serving["ports"]] == [8000]


@pytest.mark.parametrize("name", list(all_pod_workloads()))
def test_pods_run_hardened(name: str) -> None:
    doc = all_pod_workloads()[name]
    spec = pod_spec(doc)
    pod_security = spec["securityContext"]

    assert pod_security["runAsNonRoot"] is True
    assert (pod_security["runAsUser"], pod_security["runAsGroup"]) == (10001, 10001)
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for item in spec["containers"] + spec.get("initContainers", []):
        security = item["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["runAsNonRoot"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert set(item["resources"]["requests"]) >= {"cpu", "memory"}
        assert set(item["resources"]["limits"]) >= {"cpu", "memory"}


@pytest.mark.parametrize("name", list(SERVE_WORKLOADS))
def test_serve_mounts_the_models_read_only(name: str) -> None:
    doc = serve(name)
    volumes = {v["name"]: v for v in pod_spec(doc)["volumes"]}
    mounts = {m["name"]: m for m in container(doc)["volumeMounts"]}

    assert volumes["models"]["persistentVolumeClaim"] == {
        "claimName": "skship-models",
        "readOnly": True,
    }
    assert mounts["models"]["readOnly"] is True
    assert env_of(container(doc))["MODELS_DIR"]["value"] == mounts["models"]["mountPath"]


def test_train_writes_the_models_volume_serve_reads() -> None:
    job = one(TRAIN, "Job")
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    mounts = {m["name"]: m for m in container(job)["volumeMounts"]}

    assert volumes["models"]["persistentVolumeClaim"] == {"claimName": "skship-models"}
    assert not mounts["models"].get("readOnly", False)
    assert env_of(container(job))["MODELS_DIR"]["value"] == mounts["models"]["mountPath"]
    assert one(DEPLOY / "kubernetes/base/models-pvc.yaml", "PersistentVolumeClaim")["spec"][
        "accessModes"
    ] == ["ReadWriteMany"]


@pytest.mark.parametrize("name", list(SERVE_WORKLOADS))
def test_serve_waits_for_the_model_train_writes(name: str) -> None:
    doc = serve(name)
    (waiting,) = pod_spec(doc)["initContainers"]
    serving = container(doc)
    mounts = {m["name"]: m for m in waiting["volumeMounts"]}

    assert waiting["image"] == serving["image"]
    assert mounts["models"]["readOnly"] is True
    assert env_of(waiting)["MODELS_DIR"] == env_of(serving)["MODELS_DIR"]
    assert env_of(waiting)["MODEL_NAME"]["valueFrom"]["configMapKeyRef"] == {
        "name": "skship-config",
        "key": "MODEL_NAME",
    }
    assert f'"{CURRENT_POINTER}"' in waiting["command"][-1]


def test_train_fails_at_once_on_bad_input_and_a_refusing_gate() -> None:
    job = one(TRAIN, "Job")
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]

    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["containerName"] == container(job)["name"]
    assert sorted(rule["onExitCodes"]["values"]) == sorted([EXIT_USAGE, EXIT_GATE])
    assert pod_spec(job)["restartPolicy"] == "Never"


def secret_refs(item: Doc) -> dict[str, tuple[str, str, bool]]:
    """env name -> (secret, key, optional) for a container's secretKeyRefs."""
    refs = {}
    for name, env in env_of(item).items():
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            refs[name] = (ref["name"], ref["key"], ref.get("optional", False))
    return refs


@pytest.mark.parametrize("name", list(SERVE_WORKLOADS))
def test_serve_logs_as_the_writer_and_reads_as_the_reader(name: str) -> None:
    refs = secret_refs(container(serve(name)))

    assert refs["DATABASE_URL"] == ("skship-db", "database-url", False)
    assert refs["DATABASE_READ_URL"] == ("skship-db", "database-read-url", False)
    assert all(secret != "skship-db-owner" for secret, _, _ in refs.values())
    assert {refs[n] for n in ("API_KEYS", "ADMIN_TOKEN", "ARTIFACT_SIGNING_KEY")} == {
        ("skship-auth", "api-keys", True),
        ("skship-auth", "admin-token", True),
        ("skship-auth", "artifact-signing-key", True),
    }


def test_migrate_alone_holds_the_owner() -> None:
    job = one(MIGRATE, "Job")

    assert container(job)["command"] == ["python", "-m", "serving", "migrate"]
    assert secret_refs(container(job)) == {
        "DATABASE_URL": ("skship-db-owner", "database-url", False)
    }


def test_secret_example_matches_what_the_manifests_reference() -> None:
    referenced: set[tuple[str, str]] = set()
    for doc in all_pod_workloads().values():
        for item in pod_spec(doc)["containers"]:
            referenced |= {(secret, key) for secret, key, _ in secret_refs(item).values()}
    example = {
        (doc["metadata"]["name"], key)
        for doc in documents(SECRET_EXAMPLE)
        for key in doc["stringData"]
    }

    assert example == referenced


def test_no_secret_value_is_committed() -> None:
    for path in manifest_files():
        for doc in documents(path):
            if doc["kind"] != "Secret":
                continue
            assert path == SECRET_EXAMPLE
            assert "data" not in doc
            for key, value in doc["stringData"].items():
                assert "CHANGE-ME" in value, f"{doc['metadata']['name']}.{key}"


@pytest.mark.parametrize("name", list(SERVE_WORKLOADS))
def test_serve_environment_names_are_settings(name: str) -> None:
    fields = {field.upper() for field in Settings.model_fields}
    names = set(env_of(container(serve(name)))) | set(config_data())

    assert sorted(names - fields - set(NOT_SETTINGS)) == []


def test_train_environment_names_are_training_settings() -> None:
    fields = {field.upper() for field in TrainingSettings.model_fields}

    assert set(env_of(container(one(TRAIN, "Job")))) <= fields


def test_workers_is_one_process_per_pod_for_now() -> None:
    assert config_data()["WORKERS"] == "1"


def test_autoscaler_and_budget_select_the_serve_pods() -> None:
    labels = serve("statefulset")["spec"]["template"]["metadata"]["labels"]
    hpa = one(DEPLOY / "kubernetes/base/hpa.yaml", "HorizontalPodAutoscaler")
    pdb = one(DEPLOY / "kubernetes/base/pdb.yaml", "PodDisruptionBudget")
    (metric,) = hpa["spec"]["metrics"]

    assert hpa["spec"]["scaleTargetRef"]["name"] == "skship-serve"
    assert metric["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    for name in ("statefulset", "deployment"):
        assert "replicas" not in serve(name)["spec"]  # the autoscaler owns it


@pytest.mark.skipif(kubectl() is None, reason="kubectl not on PATH: kustomizations not rendered")
@pytest.mark.parametrize(
    ("name", "kind"),
    [("deploy/kubernetes", "StatefulSet"), ("deploy/kubernetes/deployment", "Deployment")],
)
def test_each_variant_scales_its_own_workload(name: str, kind: str) -> None:
    rendered = kustomize(KUSTOMIZATIONS[name])
    workloads = [d for d in rendered if d["kind"] in ("StatefulSet", "Deployment")]
    (hpa,) = [d for d in rendered if d["kind"] == "HorizontalPodAutoscaler"]

    assert [(d["kind"], d["metadata"]["name"]) for d in workloads] == [(kind, "skship-serve")]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": "skship-serve",
    }


def test_statefulset_keeps_spool_volumes_when_scaled_down() -> None:
    policy = serve("statefulset")["spec"]["persistentVolumeClaimRetentionPolicy"]

    assert policy == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_kserve_pods_carry_the_labels_the_budget_selects() -> None:
    predictor = serve("inferenceservice")["spec"]["predictor"]
    pdb = one(DEPLOY / "kubernetes/base/pdb.yaml", "PodDisruptionBudget")

    assert pdb["spec"]["selector"]["matchLabels"].items() <= predictor["labels"].items()
