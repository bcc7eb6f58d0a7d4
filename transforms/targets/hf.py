"""Training an open-weights model with TRL, Axolotl, Unsloth or LLaMA-Factory: the rows TRL's
trainers read (``schemas/formats.py`` ``trainer_row``), as JSONL or Parquet, counted with the
model's own tokenizer and chat template as the trainer renders them (``hf_tokens.py``,
``chat_template.py``), limited by the training sequence length, with a dataset card."""

from __future__ import annotations

from typing import Any

from schemas.formats import trainer_row
from schemas.layout import DATASET_PROVENANCE_DIR
from schemas.models import ModelSpec, is_openai_model
from schemas.recipe import ModelChoice
from transforms.targets.base import Target, TargetError
from transforms.targets.hf_tokens import HfSource


class OpenWeightsTarget(Target):
    """What the open-weights targets share: TRL's rows, Parquet allowed, reasoning kept, a card."""

    output_formats = ("jsonl", "parquet")
    converts = True
    open_weights = True
    dataset_card = True
    provenance_dir = DATASET_PROVENANCE_DIR
    default_name = ""

    def resolve_model(self, recipe) -> ModelSpec:
        if isinstance(recipe.model, ModelChoice):
            raise TargetError(f"model: with target {self.kind}, the tokenizer and max_length come from target; "
                              "give model as a name only")
        # An OpenAI model left in a recipe whose target was switched names nothing here: the
        # outputs are named after the model's tokenizer instead.
        named = recipe.model if recipe.model and not is_openai_model(recipe.model) else None
        return ModelSpec(named or self.default_name, self.encoding_label(), self.spec.max_length)

    def encoding_label(self) -> str:
        raise NotImplementedError

    def __init__(self, recipe):
        super().__init__(recipe)
        if self.packs_rows and recipe.output.format != "parquet":
            raise TargetError("target.packing with output.tokens writes packed rows as Parquet: set "
                              "output.format: parquet (or leave output.tokens out to estimate the packing only)")

    @property
    def packing(self) -> bool:
        return self.spec.packing

    @property
    def packs_rows(self) -> bool:
        # Tokenized rows are packed as TRL packs them; rows of messages are left for the trainer
        # to tokenize and pack, and stats.json estimates how.
        return self.spec.packing and self.tokens is not None

    def to_row(self, example: dict[str, Any], fmt: str) -> dict[str, Any]:
        return trainer_row(example, fmt)

    def writes_tokens(self) -> bool:
        return True

    def describe(self, source) -> dict[str, Any]:
        return {"trained_from": source.trained_from} if isinstance(source, HfSource) else {}


class Hf(OpenWeightsTarget):
    kind = "hf"
    title = "an open-weights model (its chat template)"

    @property
    def default_name(self) -> str:  # the outputs name the model after its tokenizer
        return self.spec.tokenizer

    def encoding_label(self) -> str:
        return f"hf:{self.spec.tokenizer}"

    def token_source(self) -> HfSource:
        # Counts the row written (the trainer's), converted once by to_row; with output.tokens the
        # tokens and masks it counts are what is written.
        return HfSource.from_target(self.spec, reads_rows=True, tokens=self.tokens)
