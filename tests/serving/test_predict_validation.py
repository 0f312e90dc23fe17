"""Bad input never gives a 5xx: each case gets its status and a body naming the problem."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.serving.conftest import make_settings

JSON = {"content-type": "application/json"}
Body = Callable[[list[float], list[str]], bytes]


def _named(row: list[float], names: list[str]) -> dict[str, Any]:
    return dict(zip(names, row, strict=True))


def _replace(row: list[float], index: int, literal: str) -> bytes:
    """A one-row body whose value ``index`` is ``literal`` verbatim (NaN, 1e400, ...)."""
    values = [orjson.dumps(v).decode() for v in row]
    values[index] = literal
    return f'{{"instances": [[{", ".join(values)}]]}}'.encode()


CASES: dict[str, tuple[Body, str, list[Any] | None]] = {
    # name: (body builder, expected type, expected loc; "F0" stands for the first feature)
    "nan_literal": (lambda r, n: _replace(r, 0, "NaN"), "finite_number", [0, "F0"]),
    "infinity_literal": (lambda r, n: _replace(r, 0, "Infinity"), "finite_number", [0, "F0"]),
    "negative_infinity": (lambda r, n: _replace(r, 0, "-Infinity"), "finite_number", [0, "F0"]),
    "overflowing_number": (lambda r, n: _replace(r, 0, "1e400"), "finite_number", [0, "F0"]),
    "absurd_magnitude": (lambda r, n: _replace(r, 0, "1e300"), "number_range", [0, "F0"]),
    "string_value": (lambda r, n: _replace(r, 0, '"12.5"'), "float_type", [0, "F0"]),
    "boolean_value": (lambda r, n: _replace(r, 0, "true"), "float_type", [0, "F0"]),
    "null_value": (lambda r, n: _replace(r, 0, "null"), "float_type", [0, "F0"]),
    "nested_value": (lambda r, n: _replace(r, 0, "[1]"), "float_type", [0, "F0"]),
    "short_array": (
        lambda r, n: orjson.dumps({"instances": [r[:-1]]}),
        "too_short",
        [0],
    ),
    "long_array": (
        lambda r, n: orjson.dumps({"instances": [[*r, 1.0]]}),
        "too_long",
        [0],
    ),
    "missing_feature": (
        lambda r, n: orjson.dumps(
            {"instances": [{k: v for k, v in _named(r, n).items() if k != n[0]}]}
        ),
        "missing",
        [0, "F0"],
    ),
    "unknown_feature": (
        lambda r, n: orjson.dumps({"instances": [{**_named(r, n), "colour": 1.0}]}),
        "extra_forbidden",
        [0, "colour"],
    ),
    "nan_in_named_instance": (
        lambda r, n: orjson.dumps({"instances": [_named(r, n)]}).replace(b"17.99", b"NaN"),
        "finite_number",
        [0, "F0"],
    ),
    "instance_neither_object_nor_array": (
        lambda r, n: b'{"instances": [42]}',
        "instance_type",
        [0],
    ),
    "empty_batch": (lambda r, n: b'{"instances": []}', "too_short", []),
    "too_many_rows": (lambda r, n: orjson.dumps({"instances": [r] * 6}), "too_long", []),
    "instances_not_a_list": (lambda r, n: b'{"instances": {"a": 1}}', "list_type", []),
    "missing_instances": (lambda r, n: b"{}", "missing", []),
    "body_not_an_object": (lambda r, n: b"[[1, 2]]", "dict_type", None),
    "malformed_json": (lambda r, n: b'{"instances": [[1, 2,]', "json_invalid", None),
    "invalid_utf8": (lambda r, n: b'{"instances": "\xff"}', "json_invalid", None),
    "empty_body": (lambda r, n: b"", "json_invalid", None),
    "deeply_nested": (lambda r, n: b"[" * 2000 + b"]" * 2000, "json_invalid", None),
}


@pytest.fixture
def strict_client(models_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(models_dir, tmp_path, max_batch_rows=5, max_body_bytes=4096))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("case", list(CASES))
def test_predict_rejects_bad_input_with_422_naming_row_and_feature(
    case: str, strict_client: TestClient, rows: list[list[float]], feature_names: list[str]
) -> None:
    build, kind, loc_tail = CASES[case]
    body = build(rows[0], feature_names)
    if len(body) > 4096:
        pytest.fail("case body exceeds the test's body limit")
    response = strict_client.post("/predict", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert [p["type"] for p in problems] == [kind]
    if loc_tail is not None:
        expected = [feature_names[0] if part == "F0" else part for part in loc_tail]
        assert problems[0]["loc"] == ["body", "instances", *expected]
    assert problems[0]["msg"]


def test_predict_reports_one_entry_per_problem(
    strict_client: TestClient, rows: list[list[float]], feature_names: list[str]
) -> None:
    named = dict(zip(feature_names, rows[1], strict=True))
    del named[feature_names[2]]
    named["colour"] = 3
    body = {"instances": [[*rows[0][:-1], "x"], named, [1.0, 2.0]]}
    response = strict_client.post("/predict", content=orjson.dumps(body), headers=JSON)
    assert response.status_code == 422
    locs = [(p["loc"][2:], p["type"]) for p in response.json()["detail"]]
    assert locs == [
        ([0, feature_names[-1]], "float_type"),
        ([1, feature_names[2]], "missing"),
        ([1, "colour"], "extra_forbidden"),
        ([2], "too_short"),
    ]


def test_predict_caps_the_number_of_reported_problems(models_dir: Path, tmp_path: Path) -> None:
    app = create_app(make_settings(models_dir, tmp_path))
    body = {"instances": [[None] * 30] * 10}
    with TestClient(app) as client:
        response = client.post("/predict", content=orjson.dumps(body), headers=JSON)
    problems = response.json()["detail"]
    assert response.status_code == 422
    assert len(problems) == 101
    assert problems[-1]["type"] == "too_many"


def test_predict_never_echoes_the_payload(
    strict_client: TestClient, rows: list[list[float]]
) -> None:
    marker = "do-not-echo-this-7f3a"
    body = {"instances": [[marker, *rows[0][1:]], [None, marker]]}
    response = strict_client.post("/predict", content=orjson.dumps(body), headers=JSON)
    assert response.status_code == 422
    assert marker not in response.text


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_predict_rejects_wrong_content_type_with_415(
    content_type: str | None, strict_client: TestClient, rows: list[list[float]]
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = strict_client.post(
        "/predict", content=orjson.dumps({"instances": [rows[0]]}), headers=headers
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


def test_predict_accepts_json_with_charset(
    strict_client: TestClient, rows: list[list[float]]
) -> None:
    response = strict_client.post(
        "/predict",
        content=orjson.dumps({"instances": [rows[0]]}),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


def test_predict_rejects_body_over_the_limit_with_413(strict_client: TestClient) -> None:
    body = b'{"instances": [' + b"[1.0]," * 2000 + b"[1.0]]}"
    response = strict_client.post("/predict", content=body, headers=JSON)
    assert response.status_code == 413
    assert "4096" in response.json()["detail"]


@pytest.mark.parametrize("bad", ["x" * 129, "tab\there", "caf\u00e9"])
def test_predict_rejects_a_request_id_that_is_too_long_or_not_printable_ascii(
    strict_client: TestClient, rows: list[list[float]], bad: str
) -> None:
    response = strict_client.post(
        "/predict",
        content=orjson.dumps({"instances": [rows[0]]}),
        headers={**JSON, "x-request-id": bad.encode("latin-1")},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "x-request-id"]
