"""``finetune_job.json``: the request that creates a fine-tuning job on the written data.

The recipe's ``finetune`` section gives the method and hyperparameters; the epochs are the
stats' estimate (``estimate.n_epochs``: the recipe's, or the platform's default for the number
of train examples), so that ``"auto"`` is resolved in one place (``transforms/stats.py``).
"""

from __future__ import annotations

from typing import Any, Sequence

from schemas.recipe import FinetuneSpec


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
