"""The stats document's contract: ``stats.schema.json`` beside this module."""

from __future__ import annotations

import json
from importlib import resources


def stats_schema() -> dict:
    return json.loads(resources.files("schemas").joinpath("stats.schema.json").read_text(encoding="utf-8"))
