"""What a fine-tuning job on the written data would cost, and the request that creates it.

The epoch rule is OpenAI's default as its cookbook's data-prep notebook derives it: aim for
3 epochs, but at least 100 and at most 25,000 example passes, within 1 to 25 epochs.
"""

from __future__ import annotations

from typing import Any, Sequence

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

JOB_FILE = "finetune_job.json"


def default_n_epochs(n_train: int) -> int:
    if n_train <= 0:
        return TARGET_EPOCHS
    if n_train * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_train)
    if n_train * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_train)
    return TARGET_EPOCHS


def training_estimate(
    *, n_train: int, billed_tokens_per_epoch: int, n_epochs: int | None = None, price_per_million_tokens: float | None = None
) -> dict[str, Any]:
    """``estimate`` in stats.json: epochs, billed tokens and, given a price, the cost."""
    epochs = n_epochs if n_epochs is not None else default_n_epochs(n_train)
    billed = epochs * billed_tokens_per_epoch
    estimate = {
        "train_examples": n_train,
        "n_epochs": epochs,
        "n_epochs_from": "recipe" if n_epochs is not None else "default",
        "billed_tokens_per_epoch": billed_tokens_per_epoch,
        "billed_tokens": billed,
    }
    if price_per_million_tokens is not None:
        estimate["price_per_million_tokens"] = price_per_million_tokens
        estimate["cost"] = round(billed / 1_000_000 * price_per_million_tokens, 4)
    return estimate


def _placeholder(files: Sequence[str]) -> str | None:
    if not files:
        return None
    names = " + ".join(sorted(files))
    return f"<file id of {names}>" if len(files) == 1 else f"<file id of one upload of {names}, concatenated>"


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
    """The body of ``POST /v1/fine_tuning/jobs`` for this dataset, with file ids left as placeholders."""
    params = {k: v for k, v in hyperparameters.items() if v != "auto"}
    params["n_epochs"] = hyperparameters.get("n_epochs") if hyperparameters.get("n_epochs") != "auto" else n_epochs
    body: dict[str, Any] = {"model": model, "training_file": _placeholder(train_files)}
    if validation_files:
        body["validation_file"] = _placeholder(validation_files)
    body["method"] = {"type": method, method: {"hyperparameters": params}}
    if suffix is not None:
        body["suffix"] = suffix
    if seed is not None:
        body["seed"] = seed
    return body
