"""TRL's SFTTrainer on ftprep's tokenized output, packed and not: taken as processed (not
tokenized again), its labels built from the written masks, packed rows kept apart by the
collator's position ids (``padding_free``, from ``seq_lengths``), and one optimisation step of a
tiny randomly initialised model. Runs where torch and trl are installed (not in make test's
environment, which has no torch: there it skips); run by hand in an environment with both for
the closing note."""

from __future__ import annotations

from pathlib import Path

import pytest

from beam_pipeline.cli import main
from tests.beam_pipeline.helpers import IN_MEMORY
from tests.real_tokenizers import folder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trl():
    pytest.importorskip("torch")
    return pytest.importorskip("trl")


def tokenized(tmp_path: Path, form: str, packed: bool) -> Path:
    out = tmp_path / f"{form}-{packed}"
    assert main(["run", str(REPO / "examples/recipes/parquet_chat_hf.yaml"), "--tokenizer", str(folder("qwen2_5")),
                 "--set", f"output.tokens={form}", "--set", f"target.packing={str(packed).lower()}",
                 "--output", str(out), IN_MEMORY]) == 0
    return out


def tiny_model(tokenizer):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024)
    return Qwen2ForCausalLM(config)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("form", ["trl", "labels"])
def test_sft_trainer_takes_the_output_as_processed_and_trains_a_step(trl, form, packed, tmp_path):
    import math

    from datasets import load_dataset
    from transformers import AutoTokenizer

    out = tokenized(tmp_path, form, packed)
    dataset = load_dataset(str(out))
    written = dataset["train"]
    assert ("seq_lengths" in written.column_names) == packed
    tokenizer = AutoTokenizer.from_pretrained(str(folder("qwen2_5")))
    # Packed rows: padding-free batches, position ids from seq_lengths; no max_length (TRL would
    # not enforce it padding-free; the rows are within the packing's already) and no packing=True
    # (TRL would pack the packed rows again, as one example each).
    trainer = trl.SFTTrainer(
        model=tiny_model(tokenizer), processing_class=tokenizer, train_dataset=written,
        args=trl.SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=4,
                           report_to=[], logging_steps=1, save_strategy="no", use_cpu=True,
                           max_length=None if packed else 1024, padding_free=packed))
    prepared = trainer.train_dataset
    # Not tokenized again: the same ids, and labels from the written masks (-100 elsewhere).
    assert prepared["input_ids"] == written["input_ids"]
    if packed:
        assert prepared["seq_lengths"] == written["seq_lengths"]
    expected = (written["labels"] if form == "labels" else
                [[i if m else -100 for i, m in zip(ids, mask)]
                 for ids, mask in zip(written["input_ids"], written["assistant_masks"])])
    assert prepared["labels"] == expected
    loss = trainer.train().training_loss
    assert math.isfinite(loss) and loss > 0


def test_the_collator_keeps_packed_examples_apart(trl, tmp_path):
    """TRL's DataCollatorForLanguageModeling, padding-free, on two packed rows: position ids
    restart at every example, and no example's first token is a label for the one before it."""
    from datasets import load_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rows = load_dataset(str(tokenized(tmp_path, "trl", True)))["train"]
    batch = [{"input_ids": row["input_ids"], "seq_lengths": row["seq_lengths"],
              "labels": [i if m else -100 for i, m in zip(row["input_ids"], row["assistant_masks"])]}
             for row in rows.select(range(2))]
    assert all(len(example["seq_lengths"]) > 1 for example in batch)  # rows that do hold several examples
    out = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(batch)
    lengths = [n for example in batch for n in example["seq_lengths"]]
    assert out["position_ids"][0].tolist() == [p for n in lengths for p in range(n)]
    starts = [sum(lengths[:k]) for k in range(len(lengths))]
    assert out["cu_seq_lens_q"].tolist() == [*starts, sum(lengths)]
    assert all(out["labels"][0, start].item() == -100 for start in starts)
    assert out["input_ids"][0].tolist() == [i for example in batch for i in example["input_ids"]]
