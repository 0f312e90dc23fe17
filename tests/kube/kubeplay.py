"""Play deploy/kubernetes with ``podman kube play``, as far as podman 4.3 plays Kubernetes.

podman plays Pods, Deployments (one replica), PersistentVolumeClaims (named volumes) and
ConfigMaps, and skips every other kind. So ``KubePlay`` plays the manifests' pods, changed
only where podman needs it (the "test overlay", ``for_podman`` and friends below):

- names get a per-run prefix (podman's volumes, secrets and pods are host-wide);
- images are the ones built here from this checkout;
- the train and migrate Jobs' pod templates run as Pods (podman skips Jobs), the train pod
  writing the models PersistentVolumeClaim that serve then mounts read-only;
- serve's ``http`` port gets a ``hostPort`` on 127.0.0.1, and its liveness and startup probes
  go: podman 4.3 turns an ``httpGet`` probe into a ``curl`` command run inside the container
  (the image has no curl, on purpose) and a named port into port 0;
- serve's init container (wait-for-model) runs in a Pod of its own, as that pod's container:
  podman 4.3 removes an init container right after starting it, fails when it has not exited
  yet, and so fails the pod;
- the Secrets become podman secrets (a JSON object of base64 values, what podman 4.3 reads);
- PostgreSQL is a Pod of the stand-in ``postgres:16`` image with
  serving/predlog/sql/roles.sh as its init script, on a network of its own where pods reach
  each other by pod name.

Everything else (the pod's security context, env from the ConfigMap and Secrets, volumes and
mounts, the command) is the manifests' own.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.pgcluster import free_port

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
ROLES_SCRIPT = ROOT / "serving" / "predlog" / "sql" / "roles.sh"
POSTGRES_IMAGE = "docker.io/library/postgres:16"

Doc = dict[str, Any]


class KubePlayError(Exception):
    """A podman command failed, or something never became ready; the message says what."""


def load(relative: str) -> list[Doc]:
    with (KUBERNETES / relative).open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def renamed(node: Any, names: dict[str, str]) -> Any:
    """A copy of ``node`` with every ``name``/``claimName`` found in ``names`` replaced."""
    if isinstance(node, list):
        return [renamed(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("name", "claimName") and isinstance(value, str) and value in names:
            out[key] = names[value]
        else:
            out[key] = renamed(value, names)
    return out


def pod_spec(doc: Doc) -> Doc:
    """The pod spec of a Pod or of a workload's template (the same object, not a copy)."""
    spec: Doc = doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]
    return spec


def with_images(doc: Doc, images: dict[str, str]) -> Doc:
    """``doc`` with each container's image replaced by ``images[its repository]``."""
    out = copy.deepcopy(doc)
    spec = pod_spec(out)
    for container in spec["containers"] + spec.get("initContainers", []):
        repository = container["image"].split(":", 1)[0]
        container["image"] = images[repository]
    return out


def job_as_pod(job: Doc) -> Doc:
    """The pod a Job would start, as a Pod (podman plays no Jobs)."""
    template = job["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": job["metadata"]["name"], "labels": template["metadata"]["labels"]},
        "spec": copy.deepcopy(template["spec"]),
    }


def statefulset_as_pod(statefulset: Doc, ordinal: int) -> tuple[Doc, list[Doc]]:
    """The pod the StatefulSet controller makes for ``ordinal``, and its claims.

    Named as Kubernetes names them: pod ``<set>-<ordinal>``, claims
    ``<template>-<set>-<ordinal>``, each mounted where the template's volume goes.
    """
    template = statefulset["spec"]["template"]
    name = f"{statefulset['metadata']['name']}-{ordinal}"
    spec = copy.deepcopy(template["spec"])
    claims = []
    for claim_template in statefulset["spec"]["volumeClaimTemplates"]:
        volume = claim_template["metadata"]["name"]
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": f"{volume}-{name}"},
            "spec": copy.deepcopy(claim_template["spec"]),
        }
        claims.append(claim)
        spec["volumes"].append(
            {"name": volume, "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
        )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": template["metadata"]["labels"]},
        "spec": spec,
    }
    return pod, claims


def serve_for_podman(workload: Doc, host_port: int) -> Doc:
    """The serve pod with a hostPort and without the probes podman cannot run."""
    out = copy.deepcopy(workload)
    spec = pod_spec(out)
    spec.pop("initContainers")
    (container,) = spec["containers"]
    container.pop("livenessProbe")
    container.pop("startupProbe")
    (port,) = container["ports"]
    port.update(hostPort=host_port, hostIP="127.0.0.1")
    return out


def postgres_pod(name: str, passwords: dict[str, str]) -> Doc:
    """PostgreSQL with the prediction log's roles, as docker-compose.yml runs it."""
    env = {
        "POSTGRES_PASSWORD": passwords["owner"],
        "POSTGRES_DB": "skship",
        "SKSHIP_WRITER_PASSWORD": passwords["writer"],
        "SKSHIP_READER_PASSWORD": passwords["reader"],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "postgres",
                    "image": POSTGRES_IMAGE,
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "volumeMounts": [
                        {
                            "name": "roles",
                            "mountPath": "/docker-entrypoint-initdb.d/10-skship-roles.sh",
                            "readOnly": True,
                        },
                        {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                    ],
                }
            ],
            "volumes": [
                {"name": "roles", "hostPath": {"path": str(ROLES_SCRIPT), "type": "File"}},
                {"name": "data", "emptyDir": {}},
            ],
        },
    }


def podman_binary() -> str | None:
    return shutil.which("podman")


class KubePlay:
    """One run: a network, secrets, PostgreSQL, train and migrate pods, the serve pod."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.prefix = f"skship-kt-{secrets.token_hex(3)}"
        self.network = self.prefix
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
        tag = f"kube-test-{checkout}"
        self.images = {
            "skship-serve": f"localhost/skship-serve:{tag}",
            "skship-train": f"localhost/skship-train:{tag}",
        }
        self.names = {
            name: name.replace("skship-", f"{self.prefix}-", 1)
            for name in (
                "skship-config", "skship-models", "skship-db", "skship-db-owner",
                "skship-auth", "skship-serve", "skship-train", "skship-migrate",
            )
        }  # fmt: skip
        self.passwords = {role: secrets.token_hex(12) for role in ("owner", "writer", "reader")}
        self.postgres = f"{self.prefix}-postgres"
        self.played: list[Path] = []
        self.secrets: list[str] = []
        self.volumes: list[str] = [self.names["skship-models"]]
        self.config: Doc = {}

    # --- podman ---------------------------------------------------------------------------

    def podman(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        binary = podman_binary()
        if binary is None:
            raise KubePlayError("no podman: run ../shared/containers/setup")
        done = subprocess.run(
            [binary, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise KubePlayError(
                f"podman {' '.join(args)} exited {done.returncode}\n"
                f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
            )
        return done

    def build(self) -> None:
        """Both images from this checkout (the layer cache makes a rebuild quick)."""
        for repository, dockerfile in (("skship-serve", "Dockerfile.serve"),
                                       ("skship-train", "Dockerfile.train")):  # fmt: skip
            self.podman(
                "build", "--format", "docker", "-f", str(ROOT / dockerfile),
                "-t", self.images[repository], str(ROOT),
                timeout=1800,
            )  # fmt: skip

    def play(self, name: str, docs: list[Doc]) -> None:
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        self.played.append(path)
        self.podman("kube", "play", "--network", self.network, str(path))

    def secret(self, name: str, data: dict[str, str]) -> None:
        encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
        path = self.workdir / f"{name}.json"
        path.write_text(json.dumps(encoded))
        self.secrets.append(self.names[name])
        self.podman("secret", "create", self.names[name], str(path))
        path.unlink()

    def container(self, pod: str, name: str) -> str:
        return f"{pod}-{name}"

    def exec(self, container: str, *command: str) -> subprocess.CompletedProcess[str]:
        return self.podman("exec", container, *command, check=False)

    def logs(self, container: str) -> str:
        done = self.podman("logs", container, check=False)
        return done.stdout + done.stderr

    def state(self, container: str) -> dict[str, Any]:
        out = self.podman("inspect", "--format", "{{json .State}}", container).stdout
        return dict(json.loads(out))

    def wait_exit(self, container: str, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(container)
            if state["Status"] in ("exited", "stopped"):
                return int(state["ExitCode"])
            time.sleep(1)
        raise KubePlayError(
            f"{container} still running after {timeout:.0f}s:\n{self.logs(container)}"
        )

    # --- the deployment -------------------------------------------------------------------

    @property
    def serve_pod(self) -> str:
        return f"{self.names['skship-serve']}-pod-0"  # podman's name for a Deployment's pod

    @property
    def serve_container(self) -> str:
        return self.container(self.serve_pod, "serve")

    def url(self, user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@{self.postgres}:5432/skship"

    def up(self) -> dict[str, float]:
        """Everything, in the order `kubectl apply -k` converges to; seconds per step."""
        steps: dict[str, float] = {}
        started = time.monotonic()
        self.podman("network", "create", self.network)
        self.secret(
            "skship-db-owner", {"database-url": self.url("postgres", self.passwords["owner"])}
        )
        self.secret(
            "skship-db",
            {
                "database-url": self.url("skship_writer", self.passwords["writer"]),
                "database-read-url": self.url("skship_reader", self.passwords["reader"]),
            },
        )  # no skship-auth: every reference to it is optional, so access is open
        self.play("postgres", [postgres_pod(self.postgres, self.passwords)])
        self.wait_postgres()
        steps["postgres"] = time.monotonic() - started

        mark = time.monotonic()
        (pvc,) = load("base/models-pvc.yaml")
        (train,) = load("base/train-job.yaml")
        (migrate,) = load("base/migrate-job.yaml")
        (config,) = load("base/configmap.yaml")
        overlay = [renamed(doc, self.names) for doc in (pvc, train, migrate, config)]
        pvc, train, migrate, config = overlay
        self.config = config  # podman reads a ConfigMap only from the file it plays
        self.play("train", [pvc, config, with_images(job_as_pod(train), self.images)])
        self.play("migrate", [with_images(job_as_pod(migrate), self.images)])
        for pod, container, timeout in ((train, "train", 600), (migrate, "migrate", 120)):
            name = self.container(pod["metadata"]["name"], container)
            code = self.wait_exit(name, timeout)
            if code != 0:
                raise KubePlayError(f"{name} exited {code}:\n{self.logs(name)}")
        steps["train and migrate"] = time.monotonic() - mark

        mark = time.monotonic()
        (deployment,) = load("deployment/serve-deployment.yaml")
        serve = serve_for_podman(
            with_images(renamed(deployment, self.names), self.images), self.port
        )
        self.play("serve", [config, serve])
        self.wait_ready()
        steps["serve ready"] = time.monotonic() - mark
        return steps

    def serve_statefulset_pod(self, host_port: int, drain_seconds: int) -> tuple[Doc, Doc]:
        """serve-statefulset.yaml's ordinal 0, as a Pod with its spool claim; not played."""
        (statefulset,) = load("serve-statefulset.yaml")
        statefulset = with_images(renamed(statefulset, self.names), self.images)
        pod, (claim,) = statefulset_as_pod(statefulset, 0)
        pod = serve_for_podman(pod, host_port)
        (container,) = pod_spec(pod)["containers"]
        (drain,) = [env for env in container["env"] if env["name"] == "DRAIN_SECONDS"]
        drain["value"] = str(drain_seconds)
        self.volumes.append(claim["metadata"]["name"])
        return pod, claim

    def play_wait_for_model(self, suffix: str, model_name: str | None = None) -> str:
        """serve's init container alone in a Pod (with MODEL_NAME replaced, if given)."""
        (deployment,) = load("deployment/serve-deployment.yaml")
        spec = pod_spec(with_images(renamed(deployment, self.names), self.images))
        (waiting,) = spec["initContainers"]
        if model_name is not None:
            waiting["env"] = [
                {"name": "MODEL_NAME", "value": model_name} if env["name"] == "MODEL_NAME" else env
                for env in waiting["env"]
            ]
        name = f"{self.prefix}-{suffix}"
        pod: Doc = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": spec["securityContext"],
                "containers": [waiting],
                "volumes": [v for v in spec["volumes"] if v["name"] == "models"],
            },
        }
        self.play(suffix, [self.config, pod])
        return self.container(name, waiting["name"])

    def wait_postgres(self, timeout: float = 120) -> None:
        # Over TCP: the image's init runs a socket-only server first.
        container = self.container(self.postgres, "postgres")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.exec(container, "pg_isready", "-q", "-h", "127.0.0.1", "-U", "postgres")
            if done.returncode == 0:
                return
            time.sleep(1)
        raise KubePlayError(f"PostgreSQL not ready after {timeout:.0f}s:\n{self.logs(container)}")

    def get(self, path: str, base_url: str | None = None) -> httpx.Response:
        return httpx.get(f"{base_url or self.base_url}{path}", timeout=10)

    def wait_ready(
        self, base_url: str | None = None, container: str | None = None, timeout: float = 120
    ) -> dict[str, Any]:
        """Poll /ready until 200; fail early, with the logs, if the serve container exits."""
        container = container or self.serve_container
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            try:
                answer = self.get("/ready", base_url)
                if answer.status_code == 200:
                    return dict(answer.json())
                last = f"{answer.status_code} {answer.text}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            if self.state(container)["Status"] == "exited":
                raise KubePlayError(f"serve exited:\n{self.logs(container)}")
            time.sleep(1)
        raise KubePlayError(
            f"serve not ready after {timeout:.0f}s ({last}):\n{self.logs(container)}"
        )

    def wait_spool_drained(self, base_url: str | None = None, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        log: dict[str, Any] = {}
        while time.monotonic() < deadline:
            log = self.get("/ready", base_url).json()["log"]
            if log["spooled_bytes"] == 0 and log["oldest_unwritten_age_s"] is None:
                return
            time.sleep(0.5)
        raise KubePlayError(f"spool not drained after {timeout:.0f}s: {log}")

    def psql(self, sql: str, user: str = "skship_reader") -> list[list[str]]:
        """Rows of ``sql`` run by ``user`` in the PostgreSQL pod (unaligned, '|')."""
        done = self.podman(
            "exec", self.container(self.postgres, "postgres"),
            "psql", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-At", "-U", user, "-d", "skship",
            "-c", sql,
        )  # fmt: skip
        return [line.split("|") for line in done.stdout.splitlines() if line]

    def down(self) -> None:
        """`podman kube down` of everything played, then the volume, secrets and network."""
        for path in reversed(self.played):
            self.podman("kube", "down", str(path), check=False, timeout=120)
        for name in self.volumes:
            self.podman("volume", "rm", "--force", name, check=False)
        for name in self.secrets:
            self.podman("secret", "rm", name, check=False)
        self.podman("network", "rm", "--force", self.network, check=False)
