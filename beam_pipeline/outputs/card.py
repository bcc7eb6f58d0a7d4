"""``README.md``: the dataset card that makes an open-weights target's output folder a Hugging
Face dataset (``load_dataset(folder)``, or ``push_to_hub`` of the folder as it is).

Its YAML header is what ``datasets`` reads: ``configs`` (which files make which split) and
``dataset_info.features`` (from the run's row type). The body says
what the data was prepared for, with its counts and token statistics from ``stats.json``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from schemas.records import SPLITS
from transforms.packing import packed_type
from transforms.row_types import features_yaml

TRL_TRAINERS = {"chat": "SFTTrainer", "completion": "SFTTrainer", "preference": "DPOTrainer"}


def _header(stats: dict, row_type: Any, extension: str) -> dict:
    records = stats["records"]
    splits = [split for split in SPLITS if records[split]]
    return {
        "configs": [{"config_name": "default",
                     "data_files": [{"split": split, "path": f"{split}/*.{extension}"} for split in splits]}],
        # Not dataset_info.splits: datasets wants each split's size in Arrow bytes there, which
        # only datasets itself knows; the body gives the counts.
        "dataset_info": {"features": features_yaml(row_type)},
        "tags": ["ftprep", "trl", "sft" if stats["format"] != "preference" else "dpo"],
    }


# Markdown's special characters, and what a name in a recipe can carry into the card's body.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>#|~&])")
NAME_CHARS = 120


def plain(text: str) -> str:
    """A name from the recipe (the model, the tokenizer) as literal text on one line of Markdown:
    control characters and line breaks gone, Markdown and HTML escaped, cut to NAME_CHARS."""
    line = "".join(c if c.isprintable() else " " for c in str(text))
    line = " ".join(line.split())
    if len(line) > NAME_CHARS:
        line = line[: NAME_CHARS - 1] + "…"
    return _MARKDOWN.sub(r"\\\1", line)


def _line(summary: dict) -> str:
    if not summary or not summary.get("count"):
        return "–"
    return f"{summary['p50']:,} / {summary['p95']:,} / {summary['max']:,}"


def _rows_line(row_type: Any, fmt: str) -> str:
    """What a row holds: TRL's rows, or the tokens the trainer trains on (output.tokens)."""
    columns = set(row_type.get("struct", {})) if isinstance(row_type, dict) else set()
    if "labels" in columns:
        return ("Rows are tokenized: `input_ids`, `attention_mask` and `labels` (-100 where nothing is trained), "
                "as Axolotl's and LLaMA-Factory's prepared datasets hold them.")
    if "input_ids" in columns:
        if fmt == "completion":
            return ("Rows are tokenized: `input_ids` and `completion_mask` (1 where the loss trains), which "
                    "`SFTTrainer` takes as processed data and folds into its labels under `completion_only_loss`.")
        return ("Rows are tokenized: `input_ids` and `assistant_masks` (1 where the loss trains), which "
                "`SFTTrainer` takes as processed data and folds into its labels.")
    return (f"Rows are in TRL's {'conversational' if fmt != 'completion' else 'prompt-completion'} format, "
            f"for `{TRL_TRAINERS[fmt]}`.")


def dataset_card(stats: dict, *, row_type: Any, extension: str, title: str) -> str:
    """The card's text for a run's ``stats`` whose splits are ``<split>/*.<extension>``."""
    records, tokens, target = stats["records"], stats["tokens"], stats["target"]
    fmt = stats["format"]
    if (stats.get("packing") or {}).get("written"):
        row_type = packed_type(row_type)
    header = yaml.safe_dump(_header(stats, row_type, extension), sort_keys=False, allow_unicode=True)
    loader = "parquet" if extension == "parquet" else "json"
    lines = [
        "---", header.rstrip("\n"), "---", "",
        f"# {plain(title)}", "",
        f"{fmt.capitalize()} examples for **{plain(stats['model']['name'])}**, prepared by ftprep for the "
        f"{target['kind']} target: counted with {plain(target['tokenizer'])}, at most "
        f"{target['max_tokens_per_example']:,} tokens per example. {_rows_line(row_type, fmt)}",
        "",
        "| split | examples | tokens |",
        "| --- | ---: | ---: |",
        *(f"| {split} | {records[split]:,} | {tokens[split]:,} |" for split in SPLITS),
        "",
        f"Tokens per example (p50 / p95 / max): {_line(tokens.get('per_example'))}; "
        f"trained on (the assistant's tokens): {_line(tokens.get('trained_per_example'))}. "
        f"Not written: {records['rejected']:,} rejected and {sum(records['dropped'].values()):,} dropped "
        "rows, each with its reason in `rejected/` and `dropped/` (`stats.json` counts them).",
    ]
    packing = stats.get("packing")
    if packing and packing["written"]:
        lines += ["", f"Rows are packed: each holds whole examples, placed by best-fit decreasing (TRL's `bfd`) "
                  f"into sequences of at most {packing['max_length']:,} tokens, and `seq_lengths` gives their "
                  f"lengths, from which TRL's collator (`padding_free=True`) restarts the position ids at each "
                  f"example{'; `position_ids` holds them already' if 'labels' in row_type['struct'] else ''}. "
                  f"The train split is {packing['sequences']:,} rows ({packing['examples_per_sequence']} examples "
                  f"each, {packing['fill']:.1%} full; padded one example per row instead: "
                  f"{packing['padding_share_unpacked']:.1%} padding)."]
    elif packing:
        lines += ["", f"Packed (best-fit decreasing) into {packing['max_length']:,}-token sequences, the train "
                  f"split makes {packing['sequences']:,} sequences ({packing['examples_per_sequence']} examples "
                  f"each, {packing['padding_share_packed']:.1%} padding; padded one example per sequence "
                  f"instead: {packing['padding_share_unpacked']:.1%})."]
    lines += ["", "```python", "from datasets import load_dataset", "",
              f'dataset = load_dataset("{loader}", data_files={{"train": "train/*.{extension}"}})  '
              "# or load_dataset(<this folder>)", "```", ""]
    if isinstance(row_type, dict) and "tools" in row_type.get("struct", {}):
        lines += ["`tools` holds each example's tool definitions as JSON text (`json.loads` it): their "
                  "parameters are JSON Schemas of any shape, which one Arrow type cannot hold.", ""]
    return "\n".join(lines)
