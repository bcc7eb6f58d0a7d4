"""The dataset card: names from the recipe are literal text, not Markdown, HTML or YAML."""

from __future__ import annotations

import yaml

from beam_pipeline.outputs.card import NAME_CHARS, dataset_card, plain

HOSTILE = "x\n---\nlicense: stolen\n<script>alert(1)</script> [click](http://evil) # heading " + "y" * 300


def stats(model: str) -> dict:
    return {"records": {"read": 1, "train": 1, "validation": 0, "rejected": 0, "dropped": {}},
            "tokens": {"train": 9, "validation": 0}, "format": "chat", "model": {"name": model},
            "target": {"kind": "hf", "tokenizer": model, "max_tokens_per_example": 128}}


def test_a_hostile_model_name_stays_one_line_of_text():
    card = dataset_card(stats(HOSTILE), row_type="null", extension="jsonl", title=f"Fine-tuning data for {HOSTILE}")
    header = yaml.safe_load(card.split("\n---\n")[0].removeprefix("---\n"))
    assert "license" not in header and card.count("\n---\n") == 1
    assert "<script>" not in card and "[click](" not in card and "\n# heading" not in card
    title = next(line for line in card.splitlines() if line.startswith("# "))
    assert len(title) <= NAME_CHARS + 40


def test_ordinary_names_read_as_they_are():
    assert plain("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert plain("my_model") == "my\\_model"  # renders as my_model
