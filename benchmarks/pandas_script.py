"""What many users would write with pandas: read_parquet, apply, to_json(lines=True).
    python -m benchmarks.pandas_script OUTPUT.jsonl SHARD.parquet...
"""

from __future__ import annotations

import json
import sys

import pandas as pd

from transforms.clean import clean_text
from transforms.tokens import load_encoding


def main(output: str, paths: list[str]) -> None:
    encoding = load_encoding("o200k_base")
    frame = pd.concat([pd.read_parquet(p, columns=["instruction", "input", "output"]) for p in paths], ignore_index=True)

    def render(row) -> list[dict]:
        instruction = clean_text(row["instruction"]) if row["instruction"] else ""
        input_ = clean_text(row["input"]) if isinstance(row["input"], str) and row["input"] else ""
        answer = clean_text(row["output"]) if row["output"] else ""
        return [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": instruction + (f"\n\n{input_}" if input_ else "")},
            {"role": "assistant", "content": answer},
        ]

    frame["messages"] = frame.apply(render, axis=1)
    frame["tokens"] = frame["messages"].apply(
        lambda ms: 3 + sum(3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"])) for m in ms)
    )
    frame[["messages"]].to_json(output, orient="records", lines=True, force_ascii=False)
    print(json.dumps({"rows": len(frame), "tokens": int(frame["tokens"].sum())}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
