"""``python -m serving migrate`` and ``log ...`` (being built on the `predlog` branch)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the prediction log's subcommands to ``python -m serving``."""
