"""The baseline: the single-process script a user would write (pyarrow, tiktoken, json).

Same cleaning and template as the benchmark recipe; no validation, dedup, split or stats.
    python -m benchmarks.plain OUTPUT.jsonl SHARD.parquet...
"""

from __future__ import annotations

import json
import sys

import pyarrow.parquet as pq

from transforms.clean import clean_text
from transforms.tokens import load_encoding


def main(output: str, paths: list[str]) -> None:
    encoding = load_encoding("o200k_base")
    rows = tokens = 0
    with open(output, "w", encoding="utf-8") as out:
        for path in paths:
            for batch in pq.ParquetFile(path).iter_batches(columns=["instruction", "input", "output"]):
                for row in batch.to_pylist():
                    instruction, input_, answer = (clean_text(v) if v else v for v in
                                                   (row["instruction"], row["input"], row["output"]))
                    user = instruction + (f"\n\n{input_}" if input_ else "")
                    messages = [
                        {"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": user},
                        {"role": "assistant", "content": answer},
                    ]
                    tokens += 3 + sum(3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"])) for m in messages)
                    out.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
                    rows += 1
    print(json.dumps({"rows": rows, "tokens": tokens}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
