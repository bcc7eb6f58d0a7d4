"""What a TRL user runs to prepare the same rows for assistant-only training: ``datasets.map``
with ``tokenizer.apply_chat_template(..., tokenize=True, return_dict=True,
return_assistant_tokens_mask=True)`` and TRL's training version of the model's chat template
(the one SFTTrainer swaps in for ``assistant_only_loss``), ``num_proc`` processes; exact
duplicates dropped by a hash set, 5 % held out, Parquet written. With ``--pack=MAX_LENGTH``,
each split is packed first as SFTTrainer packs it (``trl.pack_dataset``, best-fit decreasing,
its batches of 1,000 examples, ``num_proc`` processes). Cleans and renders the rows as
benchmarks/plain.py does; imports nothing from ftprep.

    python -m benchmarks.trl_style OUTPUT_DIR NUM_PROC TOKENIZER_DIR TRAINING_TEMPLATE [--pack=N] SHARD.parquet...
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import datasets

from benchmarks.plain import VALIDATION_PERCENT, chat_messages

_tokenizer = None


def tokenize(row: dict, tokenizer_dir: str, template: str) -> dict:
    global _tokenizer
    if _tokenizer is None:  # once per worker process
        from transformers import AutoTokenizer

        _tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    messages = chat_messages(row)
    answer = messages[-1]["content"]
    line = json.dumps({"messages": messages}, ensure_ascii=False)
    processed = _tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True, return_dict=True,
                                               return_assistant_tokens_mask=True)
    return {"input_ids": processed["input_ids"], "assistant_masks": processed["assistant_masks"],
            "digest": hashlib.blake2b(line.lower().encode(), digest_size=16).hexdigest(), "empty": not answer}


def main(output: str, num_proc: int, tokenizer_dir: str, template_path: str, paths: list[str],
         pack: int | None = None) -> None:
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    datasets.disable_caching()  # every run does the work
    template = Path(template_path).read_text(encoding="utf-8")
    table = datasets.Dataset.from_parquet(paths, keep_in_memory=False)
    rows = len(table)
    done = table.map(tokenize, fn_kwargs={"tokenizer_dir": tokenizer_dir, "template": template}, num_proc=num_proc,
                     remove_columns=table.column_names, load_from_cache_file=False)
    done = done.filter(lambda empty: not empty, input_columns="empty", num_proc=num_proc, load_from_cache_file=False)
    seen: set[str] = set()
    unique = done.filter(lambda digest: not (digest in seen or seen.add(digest)), input_columns="digest",
                         load_from_cache_file=False)
    parts = unique.train_test_split(test_size=VALIDATION_PERCENT / 100, seed=0)
    for name, part in (("train", parts["train"]), ("validation", parts["test"])):
        part = part.select_columns(["input_ids", "assistant_masks"])
        if pack is not None:
            from trl.data_utils import pack_dataset

            part = pack_dataset(part, pack, "bfd", {"num_proc": num_proc, "load_from_cache_file": False})
        part.to_parquet(str(out_dir / f"{name}.parquet"))
    print(json.dumps({"rows": rows, "kept": len(unique)}))


if __name__ == "__main__":
    rest = sys.argv[5:]
    packing = int(rest.pop(0).removeprefix("--pack=")) if rest and rest[0].startswith("--pack=") else None
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], rest, packing)
