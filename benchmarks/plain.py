"""The baseline: the single-process script a user would write for the benchmark's job with
pyarrow, tiktoken and json, importing nothing from ftprep. The same job as
``benchmarks/recipe.yaml``: clean each field (line breaks, control characters, NFC, runs of
spaces), render the chat example, count its tokens, drop exact duplicates (a set of digests),
hold out 5 % for validation by a hash, write train.jsonl and validation.jsonl.

    python -m benchmarks.plain OUTPUT_DIR SHARD.parquet...
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import tiktoken

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
SPACES = re.compile(r"[ \t]{2,}")
SYSTEM = "You are a helpful assistant."
VALIDATION_PERCENT = 5


def clean(text: str) -> str:
    text = unicodedata.normalize("NFC", CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")))
    return "\n".join(SPACES.sub(" ", line).rstrip() for line in text.split("\n")).strip()


def chat_messages(row: dict) -> list[dict]:
    """The benchmark recipe's example for a row, its fields cleaned (the assistant's content is
    empty where the row has no answer: such rows are left out)."""
    instruction, input_, answer = (clean(v) if v else "" for v in (row["instruction"], row["input"], row["output"]))
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": instruction + (f"\n\n{input_}" if input_ else "")},
        {"role": "assistant", "content": answer},
    ]


def main(output: str, paths: list[str]) -> None:
    encoding = tiktoken.get_encoding("o200k_base")
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: set[bytes] = set()
    rows = kept = tokens = 0
    with open(out_dir / "train.jsonl", "w", encoding="utf-8") as train, \
            open(out_dir / "validation.jsonl", "w", encoding="utf-8") as validation:
        for path in paths:
            for batch in pq.ParquetFile(path).iter_batches(columns=["instruction", "input", "output"]):
                for row in batch.to_pylist():
                    rows += 1
                    messages = chat_messages(row)
                    if not messages[-1]["content"]:
                        continue
                    line = json.dumps({"messages": messages}, ensure_ascii=False)
                    digest = hashlib.blake2b(line.lower().encode(), digest_size=16).digest()
                    if digest in seen:
                        continue
                    seen.add(digest)
                    tokens += 3 + sum(3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"])) for m in messages)
                    held_out = digest[0] * 100 // 256 < VALIDATION_PERCENT
                    (validation if held_out else train).write(line + "\n")
                    kept += 1
    print(json.dumps({"rows": rows, "kept": kept, "tokens": tokens}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
