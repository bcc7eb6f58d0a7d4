"""The tool most fine-tuning users would write this job with: Hugging Face ``datasets``.
``Dataset.map(num_proc=N)`` cleans, renders and counts tokens; exact duplicates go by a hash set;
``train_test_split`` holds out 5 %; ``to_json`` writes. The benchmark's job (see
benchmarks/plain.py), importing nothing from ftprep.

    python -m benchmarks.hf_datasets OUTPUT_DIR NUM_PROC SHARD.parquet...
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import datasets

from benchmarks.plain import VALIDATION_PERCENT, chat_messages

_encoding = None


def render(row: dict) -> dict:
    global _encoding
    if _encoding is None:  # once per worker process
        import tiktoken

        _encoding = tiktoken.get_encoding("o200k_base")
    messages = chat_messages(row)
    answer = messages[-1]["content"]
    line = json.dumps({"messages": messages}, ensure_ascii=False)
    tokens = 3 + sum(3 + len(_encoding.encode(m["role"])) + len(_encoding.encode(m["content"])) for m in messages)
    return {"messages": messages, "digest": hashlib.blake2b(line.lower().encode(), digest_size=16).hexdigest(),
            "tokens": tokens, "empty": not answer}


def main(output: str, num_proc: int, paths: list[str]) -> None:
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Every run does the work: no results of an earlier run taken from datasets' cache.
    datasets.disable_caching()
    table = datasets.Dataset.from_parquet(paths, keep_in_memory=False)
    rows = len(table)
    rendered = table.map(render, num_proc=num_proc, remove_columns=table.column_names, load_from_cache_file=False)
    rendered = rendered.filter(lambda empty: not empty, input_columns="empty", num_proc=num_proc,
                               load_from_cache_file=False)
    seen: set[str] = set()
    unique = rendered.filter(lambda digest: not (digest in seen or seen.add(digest)), input_columns="digest",
                             load_from_cache_file=False)
    parts = unique.train_test_split(test_size=VALIDATION_PERCENT / 100, seed=0)
    for name, part in (("train", parts["train"]), ("validation", parts["test"])):
        part.select_columns(["messages"]).to_json(str(out_dir / f"{name}.jsonl"), lines=True, force_ascii=False)
    print(json.dumps({"rows": rows, "kept": len(unique), "tokens": sum(unique["tokens"])}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
