"""OpenAI fine-tuning, the reference target: OpenAI's chat, completion and preference JSONL as
ftprep validates it, tokens counted with the model's tiktoken encoding by the cookbook's method,
the model table's per-example limit (``schemas/models.py``), the billing estimate, and
``finetune_job.json``: the request that creates a fine-tuning job on the written data.

The recipe's ``finetune`` section gives the method and hyperparameters; the epochs are the
stats' estimate (``estimate.n_epochs``: the recipe's, or the platform's default for the number
of train examples), so that ``"auto"`` is resolved in one place (``transforms/stats.py``).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Sequence

from schemas.models import ModelSpec, lookup_model, retirement_notice, snapshot_of
from schemas.recipe import FinetuneSpec, ModelChoice
from transforms.targets.base import Target, TargetError
from transforms.tokens import TiktokenSource

# "To fine-tune a model, you are required to provide at least 10 examples."
LIMITS_SOURCE = "https://platform.openai.com/docs/guides/supervised-fine-tuning"
MIN_TRAIN_EXAMPLES = 10


def _placeholder(files: Sequence[str]) -> str | None:
    if not files:
        return None
    names = " + ".join(sorted(files))
    return f"<file id of {names}>" if len(files) == 1 else f"<file id of one upload of {names}, concatenated>"


def job_settings(finetune: FinetuneSpec, *, model: str, example_format: str) -> dict[str, Any]:
    """What the job request takes from the recipe (all but the files and the epochs)."""
    method = finetune.method or ("dpo" if example_format == "preference" else "supervised")
    hyperparameters = {"batch_size": finetune.batch_size, "learning_rate_multiplier": finetune.learning_rate_multiplier}
    if method == "dpo":
        hyperparameters["beta"] = finetune.beta
    return {"model": model, "method": method, "hyperparameters": hyperparameters, "suffix": finetune.suffix,
            "seed": finetune.seed}


def job_spec(
    *,
    model: str,
    method: str,
    hyperparameters: dict[str, Any],
    train_files: Sequence[str],
    validation_files: Sequence[str],
    n_epochs: int,
    suffix: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The body of ``POST /v1/fine_tuning/jobs`` for this dataset, with file ids left as
    placeholders; hyperparameters left ``"auto"`` are left out (the platform chooses)."""
    params = {"n_epochs": n_epochs, **{k: v for k, v in hyperparameters.items() if v != "auto"}}
    body: dict[str, Any] = {"model": model, "training_file": _placeholder(train_files)}
    if validation_files:
        body["validation_file"] = _placeholder(validation_files)
    body["method"] = {"type": method, method: {"hyperparameters": params}}
    if suffix is not None:
        body["suffix"] = suffix
    if seed is not None:
        body["seed"] = seed
    return body


class OpenAI(Target):
    kind = "openai"
    title = "OpenAI"
    openai_billing = True

    def _output_hint(self) -> str:
        return "; parquet is for target hf or gpt-oss"

    def describe_kind(self) -> str:
        return "OpenAI"

    def resolve_model(self, recipe) -> ModelSpec:
        if recipe.model is None:
            raise TargetError("model: give the model to fine-tune, e.g. gpt-4o-mini-2024-07-18")
        try:
            return recipe.model.spec() if isinstance(recipe.model, ModelChoice) else lookup_model(recipe.model)
        except ValueError as error:
            raise TargetError(f"model: {error}") from None

    def token_source(self) -> TiktokenSource:
        return TiktokenSource(self.model.encoding, self.encodings_url)

    def job_request(self, *, finetune, example_format: str, train_files: Sequence[str],
                    validation_files: Sequence[str], n_epochs: int) -> dict[str, Any]:
        # The dated snapshot, never an alias that may move (the platform's guidance).
        settings = job_settings(finetune, model=snapshot_of(self.model.name), example_format=example_format)
        return job_spec(**settings, train_files=train_files, validation_files=validation_files, n_epochs=n_epochs)

    def describe(self, source) -> dict[str, Any]:
        notice = retirement_notice(date.today().isoformat())
        # A training file under the minimum is refused at upload; checked on the run's counts.
        limits = {"limits": {"min_train_examples": MIN_TRAIN_EXAMPLES}, "limits_source": LIMITS_SOURCE}
        return {**({"retirement": notice} if notice else {}), **limits}
