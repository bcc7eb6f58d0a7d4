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
    # Every end-to-end run writes provenance/, so that assert_counts_add_up can check that each
    # input row is accounted for exactly once, not only that the counts add up.
    return main(["run", *argv, "--set", "output.provenance=true"])


def read_lines(directory: Path) -> list[dict]:
    """The records of an output's shards: JSON lines, or the rows of Parquet shards."""
    import pyarrow.parquet as pq

    rows = [row for f in sorted(directory.glob("part-*.parquet")) for row in pq.read_table(f).to_pylist()]
    return rows + [json.loads(line) for f in sorted(directory.glob("part-*.jsonl"))
                   for line in f.read_text(encoding="utf-8").splitlines()]


def read_output(output: Path) -> dict:
    out = {
        "train": read_lines(output / "train"),
        "validation": read_lines(output / "validation"),
        "rejected": read_lines(output / "rejected"),
        "stats": json.loads((output / "stats.json").read_text()),
        "dropped": {d.name: read_lines(d) for d in sorted((output / "dropped").glob("*")) if d.is_dir()},
    }
    for name in ("provenance", "__provenance__"):  # the latter in a Hugging Face dataset folder
        if (output / name).is_dir():
            out["provenance"] = {split: read_lines(output / name / split) for split in ("train", "validation")}
    return out


def assert_counts_add_up(out: dict) -> None:
    records = out["stats"]["records"]
    assert records["read"] == records["train"] + records["validation"] + records["rejected"] + sum(records["dropped"].values())
    assert records["train"] == len(out["train"])
    assert records["validation"] == len(out["validation"])
    assert records["rejected"] == len(out["rejected"])
    assert {reason: len(lines) for reason, lines in out["dropped"].items() if lines} == {
        reason: n for reason, n in records["dropped"].items() if n}
    if "provenance" in out:
        assert len(outcome_by_source(out)) == records["read"]


def outcome_by_source(out: dict) -> dict[tuple[str, int], str]:
    """Where each input row went: "train", "validation", "rejected:<codes>" or "dropped:<reason>".
    Needs a run with output.provenance; a row that shows up twice fails the test."""
    outcomes: dict[tuple[str, int], str] = {}

    def note(source: dict, outcome: str) -> None:
        key = (source["file"], source["row"])
        assert key not in outcomes, f"row {key} is both {outcomes[key]} and {outcome}"
        outcomes[key] = outcome

    for split, sources in out["provenance"].items():
        for source in sources:
            note(source, split)
    for record in out["rejected"]:
        note(record["source"], "rejected:" + ",".join(sorted({e["code"] for e in record["errors"]})))
    for reason, records in out["dropped"].items():
        for record in records:
            note(record["source"], f"dropped:{reason}")
    return outcomes


def assert_conserved(out: dict, expected_rows: set[tuple[str, int]] | None = None) -> dict[tuple[str, int], str]:
    """The conservation check: read == train + validation + rejected + dropped, every row exactly
    once (by provenance), and, given ``expected_rows``, exactly the rows the inputs hold."""
    assert_counts_add_up(out)
    outcomes = outcome_by_source(out)
    assert len(outcomes) == out["stats"]["records"]["read"]
    if expected_rows is not None:
        assert set(outcomes) == set(expected_rows)
    return outcomes


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
        # Which shard files a split has depends on the runner; everything else must agree.
        "job": {k: v for k, v in json.loads((output / "finetune_job.json").read_text()).items()
                if k not in ("training_file", "validation_file")},
        "success": (output / "_SUCCESS").exists(),
    }


def screenshot(page: Path, tmp_path: Path) -> bytes:
    """``page`` rendered by headless Chromium, as PNG bytes; the test is skipped without Chromium."""
    import shutil
    import subprocess

    import pytest

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium here (apt install chromium)")
    png = tmp_path / f"{page.stem}.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={png}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    return png.read_bytes()
