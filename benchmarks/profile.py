"""Where ftprep's time goes: a sampling profile of one benchmark run, grouped by stage.

    python -m benchmarks.profile [--rows 50000]

Runs ftprep with ``benchmarks/recipe.yaml`` on 1 worker in-process (every stage in one Python
process, so one profile sees all of it) under py-spy, which samples native frames too (tiktoken's
Rust encoder included) and does not slow the run down the way cProfile does. Prints the share of
samples per stage as a Markdown table. Needs ``py-spy`` (the ``bench`` extra) and permission to
trace a child process.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.generate import generate

HERE = Path(__file__).resolve().parent

# (label, frame) in priority order: a sample belongs to the first group whose frame is on its stack.
GROUPS = [
    ("tokenisation (tiktoken `encode_ordinary`)", "Encoding.encode_ordinary core.py"),
    ("token accounting around it", "_CountTokensFn.handle tokens.py"),
    ("dedup: normalise and digest the example", "content_key text.py"),
    ("dedup: keys in pass 1", "_DedupKeysFn.handle dedup.py"),
    ("dedup: keys in pass 1", "_DedupKeysFn._prepare dedup.py"),  # near dedup's signatures, a batch at a time
    ("dedup: decide (sort the keys)", "_ExactPartitionFn.process dedup.py"),
    ("dedup: decide (sort the keys)", "_NearPartitionFn.process dedup.py"),
    ("cleaning", "_CleanFn.handle clean.py"),
    ("template (Jinja or compiled)", "_RenderFn.handle template.py"),
    ("validation", "_ValidateFn.handle validate.py"),
    ("reading Parquet", "ParquetReader.read parquet.py"),
    ("split", "_SplitFn.handle split.py"),
    ("stats", "stats.py"),
    ("pass 1: writing the unit's file", "units.py"),
    ("pass 2: writing the shards", "shards.py"),
    ("finishing: stats.json, report", "finalize.py"),
    ("start-up: imports, recipe, graph", "build_pipeline pipeline.py"),
    ("start-up: imports, recipe, graph", "plan_job pipeline.py"),
    ("start-up: imports, recipe, graph", "_find_and_load <frozen importlib._bootstrap>"),
]
REST = "Beam runner, coders and the rest"
_FRAME = re.compile(r"^(?P<name>[^ ]+) \((?P<file>[^:)]*)")


def frame_names(stack: str) -> list[str]:
    """py-spy raw frames ``name (path:line)`` as ``name file`` (file without its directory)."""
    names = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame)
        names.append(f"{match['name']} {match['file'].rsplit('/', 1)[-1]}" if match else frame)
    return names


def group_of(names: list[str]) -> str:
    for label, key in GROUPS:
        if key.endswith(".py") and " " not in key:
            if any(name.endswith(" " + key) for name in names):
                return label
        elif key in names:
            return label
    return REST


def shares(raw: str) -> dict[str, float]:
    counts: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            counts[group_of(frame_names(stack))] += int(count)
    total = sum(counts.values()) or 1
    return {label: n / total for label, n in counts.most_common()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ftprep-bench")
    args = parser.parse_args(argv)

    paths = generate(args.work / f"rows-{args.rows}", args.rows, 4)
    with tempfile.TemporaryDirectory(dir=args.work) as out:
        raw = Path(out) / "profile.txt"
        command = [
            shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record", "--rate", "200", "--format", "raw", "--output", str(raw), "--",
            sys.executable, "-m", "beam_pipeline", "run", str(HERE / "recipe.yaml"), "--overwrite",
            *[arg for path in paths for arg in ("--input", str(path))],
            "--output", str(Path(out) / "ftprep"), "--direct_num_workers=1", "--direct_running_mode=in_memory",
        ]
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        result = shares(raw.read_text())
    print(f"{args.rows:,} rows, ftprep on 1 worker in-process, py-spy samples by stage:\n")
    print("| stage | share of samples |\n| --- | ---: |")
    for label, share in result.items():
        print(f"| {label} | {share:.0%} |")


if __name__ == "__main__":
    main()
