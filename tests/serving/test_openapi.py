"""The OpenAPI document is usable by a newcomer and true: schemathesis finds no 5xx and no
response that contradicts it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from tests.live import live_server


def test_openapi_describes_the_models_features_with_an_example(
    client: TestClient, feature_names: list[str]
) -> None:
    schema = client.get("/openapi.json").json()
    request = schema["components"]["schemas"]["PredictRequest"]
    by_name, positional = request["properties"]["instances"]["items"]["anyOf"]
    assert by_name["required"] == feature_names
    assert positional["minItems"] == positional["maxItems"] == len(feature_names)
    example = request["example"]
    assert client.post("/predict", json=example).status_code == 200


def test_openapi_documents_every_error_status_of_predict(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    assert {"200", "401", "413", "415", "422", "503"} <= set(operation["responses"])


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    models_dir: Path, tmp_path: Path
) -> None:
    seed = os.environ.get("SCHEMATHESIS_SEED", "20261127")
    with live_server(models_dir, tmp_path, env={"ADMIN_TOKEN": "t0ken"}) as server:
        assert httpx.get(server.base_url + "/ready").status_code == 200
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                f"--config-file={Path(__file__).with_name('schemathesis.toml')}",
                "run",
                f"{server.base_url}/openapi.json",
                "--checks=all",
                "--max-examples=60",
                f"--seed={seed}",
                "--header=Authorization: Bearer t0ken",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        server_log = server.log()
    assert result.returncode == 0, result.stdout[-5000:]
    assert "Traceback" not in server_log
