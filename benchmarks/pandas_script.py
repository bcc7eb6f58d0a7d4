"""What many users would write with pandas: read_parquet, apply, drop_duplicates, a hashed split,
to_json(lines=True). The benchmark's job (see benchmarks/plain.py), importing nothing from ftprep.

    python -m benchmarks.pandas_script OUTPUT_DIR SHARD.parquet...
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pandas as pd
import tiktoken

from benchmarks.plain import SYSTEM, VALIDATION_PERCENT, clean


def main(output: str, paths: list[str]) -> None:
    encoding = tiktoken.get_encoding("o200k_base")
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.concat([pd.read_parquet(p, columns=["instruction", "input", "output"]) for p in paths], ignore_index=True)
    rows = len(frame)
    for column in ("instruction", "input", "output"):
        frame[column] = frame[column].map(lambda v: clean(v) if isinstance(v, str) and v else "")
    frame = frame[frame["output"] != ""]
    frame["messages"] = [
        [{"role": "system", "content": SYSTEM},
         {"role": "user", "content": i + (f"\n\n{x}" if x else "")},
         {"role": "assistant", "content": o}]
        for i, x, o in zip(frame["instruction"], frame["input"], frame["output"])
    ]
    frame["line"] = frame["messages"].map(lambda ms: json.dumps({"messages": ms}, ensure_ascii=False))
    frame["digest"] = frame["line"].map(lambda line: hashlib.blake2b(line.lower().encode(), digest_size=16).digest())
    frame = frame.drop_duplicates("digest")
    frame["tokens"] = frame["messages"].map(
        lambda ms: 3 + sum(3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"])) for m in ms))
    held_out = frame["digest"].map(lambda d: d[0] * 100 // 256 < VALIDATION_PERCENT)
    for name, part in (("train", frame[~held_out]), ("validation", frame[held_out])):
        part[["messages"]].to_json(out_dir / f"{name}.jsonl", orient="records", lines=True, force_ascii=False)
    print(json.dumps({"rows": rows, "kept": len(frame), "tokens": int(frame["tokens"].sum())}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
