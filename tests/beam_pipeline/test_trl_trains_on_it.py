"""TRL's SFTTrainer on ftprep's tokenized output: taken as processed (not tokenized again), its
labels built from the written masks, and one optimisation step of a tiny randomly initialised
model. Runs where torch and trl are installed (not in make test's environment, which has no
torch: there it skips); run by hand in an environment with both for the closing note."""

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


def tokenized(tmp_path: Path, form: str) -> Path:
    out = tmp_path / form
    assert main(["run", str(REPO / "examples/recipes/parquet_chat_hf.yaml"), "--tokenizer", str(folder("qwen2_5")),
                 "--set", f"output.tokens={form}", "--output", str(out), IN_MEMORY]) == 0
    return out


def tiny_model(tokenizer):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024)
    return Qwen2ForCausalLM(config)


@pytest.mark.parametrize("form", ["trl", "labels"])
def test_sft_trainer_takes_the_output_as_processed_and_trains_a_step(trl, form, tmp_path):
    import math

    from datasets import load_dataset
    from transformers import AutoTokenizer

    out = tokenized(tmp_path, form)
    dataset = load_dataset(str(out))
    written = dataset["train"]
    tokenizer = AutoTokenizer.from_pretrained(str(folder("qwen2_5")))
    trainer = trl.SFTTrainer(
        model=tiny_model(tokenizer), processing_class=tokenizer, train_dataset=written,
        args=trl.SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=4,
                           report_to=[], logging_steps=1, save_strategy="no", use_cpu=True, max_length=1024))
    prepared = trainer.train_dataset
    # Not tokenized again: the same ids, and labels from the written masks (-100 elsewhere).
    assert prepared["input_ids"] == written["input_ids"]
    expected = (written["labels"] if form == "labels" else
                [[i if m else -100 for i, m in zip(ids, mask)]
                 for ids, mask in zip(written["input_ids"], written["assistant_masks"])])
    assert prepared["labels"] == expected
    loss = trainer.train().training_loss
    assert math.isfinite(loss) and loss > 0
