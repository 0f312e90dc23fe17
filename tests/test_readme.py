"""The README's configuration tables list every setting, each with its true default."""

from __future__ import annotations

import re
from pathlib import Path

from serving.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"### {title}\n")
    end = text.find("\n## ", start)
    return text[start:end]


def test_serving_configuration_table_lists_every_setting() -> None:
    table = _section("Configuration")
    documented = set(re.findall(r"^\| `([A-Z_]+)`(?:, `([A-Z_]+)`)?", table, re.MULTILINE))
    names = {name for pair in documented for name in pair if name}
    assert names == {field.upper() for field in Settings.model_fields}


def test_serving_configuration_defaults_are_the_real_ones() -> None:
    table = _section("Configuration")
    for field, info in Settings.model_fields.items():
        value = info.get_default(call_default_factory=True)
        if value is None or isinstance(value, bool | dict | list):
            continue  # "unset" / "false" in words
        row = next(line for line in table.splitlines() if f"`{field.upper()}`" in line)
        default = str(value).removesuffix(".0") if isinstance(value, float) else str(value)
        assert f"`{default}`" in row or f"`./{default}`" in row, (field, row)
