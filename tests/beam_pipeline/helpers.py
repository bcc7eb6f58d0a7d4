"""Running the CLI end to end on files in tmp_path and reading the outputs back."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from beam_pipeline.cli import main

IN_MEMORY = "--direct_running_mode=in_memory"


def write_recipe(tmp_path: Path, doc: dict, name: str = "recipe.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def run(*argv: str) -> int:
    return main(["run", *argv])


def read_lines(directory: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(directory.glob("part-*.jsonl")) for line in f.read_text(encoding="utf-8").splitlines()]


def read_output(output: Path) -> dict:
    return {
        "train": read_lines(output / "train"),
        "validation": read_lines(output / "validation"),
        "rejected": read_lines(output / "rejected"),
        "stats": json.loads((output / "stats.json").read_text()),
    }


def assert_counts_add_up(out: dict) -> None:
    records = out["stats"]["records"]
    assert records["read"] == records["train"] + records["validation"] + records["rejected"] + sum(records["dropped"].values())
    assert records["train"] == len(out["train"])
    assert records["validation"] == len(out["validation"])
    assert records["rejected"] == len(out["rejected"])


def snapshot(output: Path) -> dict:
    """What two equivalent runs must agree on: the sorted lines of every output directory (train,
    validation, rejected, each dropped reason), ``stats.json`` and ``finetune_job.json``; shard
    boundaries and line order may differ."""
    parts: dict[str, list[str]] = {}
    for f in sorted(output.rglob("part-*.jsonl")):
        parts.setdefault(str(f.parent.relative_to(output)), []).extend(f.read_text(encoding="utf-8").splitlines())
    return {
        "lines": {directory: sorted(lines) for directory, lines in parts.items()},
        "stats": json.loads((output / "stats.json").read_text()),
        "job": json.loads((output / "finetune_job.json").read_text()),
        "success": (output / "_SUCCESS").exists(),
    }
