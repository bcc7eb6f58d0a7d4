"""Fireworks AI fine-tuning: supervised JSONL of ``messages`` (OpenAI-compatible chat) and DPO pairs.

Rules, from "Supervised Fine Tuning - Text": 3 to 3 million examples; each message has a role
(system, user or assistant; a system message is optional and, if present, the first) and string
content, and may have ``weight`` 0 or 1 (0 skips the message). Tool calls are not part of the
schema documented there, nor is the completion format. "Direct Preference Optimization": the
same 3 to 3 million examples of ``input.messages`` (roles system, user, assistant; string
content), ``preferred_output`` and ``non_preferred_output`` (one assistant message each, the
last turn); such a dataset trains with ``firectl create dpoj``.
"""

from __future__ import annotations

from transforms.targets.base import (
    Counting, DatasetLimits, Provider, TargetRuleError, flat_job_body, reject_tools, text_of,
)
from transforms.targets.hosted import HostedTarget

DATA = "https://docs.fireworks.ai/fine-tuning/fine-tuning-models"
JOBS = "https://docs.fireworks.ai/tools-sdks/firectl/commands/create-supervised-fine-tuning-job"
DPO = "https://docs.fireworks.ai/fine-tuning/dpo-fine-tuning"
DPO_JOBS = "https://fireworks.ai/docs/tools-sdks/firectl/commands/create-dpo-job"
ROLES = ("system", "user", "assistant")


def _messages(messages: list[dict], where: str = "messages", *, weights: bool = True) -> list[dict]:
    rows = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            raise TargetRuleError("fireworks_role", f"{where}[{index}].role is {role!r}; Fireworks takes system, user, assistant")
        if role == "system" and index != 0:
            raise TargetRuleError("fireworks_system_first", f"{where}[{index}]: a system message must be the first")
        row = {"role": role, "content": text_of(message.get("content"), f"{where}[{index}]", "fireworks_content")}
        if "weight" in message and weights:
            row["weight"] = message["weight"]
        elif message.get("weight", 1) == 0:
            raise TargetRuleError("fireworks_weight", f"{where}[{index}]: Fireworks' DPO messages have no weight (weight 0)")
        rows.append(row)
    return rows


def to_row(example: dict, fmt: str) -> dict:
    holder = example["input"] if fmt == "preference" else example
    reject_tools(holder, "fireworks_tools", "Fireworks")
    if fmt == "chat":
        return {"messages": _messages(example["messages"])}
    return {"input": {"messages": _messages(holder["messages"], "input.messages", weights=False)},
            "preferred_output": _messages(example["preferred_output"], "preferred_output", weights=False),
            "non_preferred_output": _messages(example["non_preferred_output"], "non_preferred_output", weights=False)}


def job_request(*, model: str, train_files, validation_files, n_epochs: int | None, suffix: str | None,
                example_format: str) -> dict:
    """The fields of ``firectl create sftj`` (``dpoj`` for preference pairs; the dataset ids as
    placeholders: Fireworks datasets are uploaded with ``firectl create dataset``)."""
    if example_format == "preference":
        body = flat_job_body({"model": "baseModel", "train": "dataset", "validation": "evaluationDataset",
                              "epochs": "epochs", "suffix": "outputModel"}, placeholder="dataset id", model=model,
                             train_files=train_files, validation_files=[], n_epochs=n_epochs, suffix=suffix)
        # The flags its page shows name no evaluation dataset: the validation files stay out of it.
        return {"command": "firectl create dpoj", **body}
    return flat_job_body({"model": "baseModel", "train": "dataset", "validation": "evaluationDataset",
                          "epochs": "epochs", "suffix": "outputModel"}, placeholder="dataset id", model=model,
                         train_files=train_files, validation_files=validation_files, n_epochs=n_epochs, suffix=suffix)


PROVIDER = Provider(
    title="Fireworks AI", sources={"format and limits": DATA, "DPO pairs": DPO, "job request": JOBS,
                                   "DPO job request": DPO_JOBS},
    formats=("chat", "preference"), models={},
    limits=DatasetLimits(min_train_examples=3, max_train_examples=3_000_000, source=DATA),
    counting=Counting("estimate", chars_per_token=4.0,
                      source="no published ratio: 4 characters a token; give target.tokenizer for exact counts"),
    schema_file="fireworks.schema.json", open_model_list=True,
    unpublished=("the per-example token limit (the model's max context length, per model in Fireworks' list)",
                 "an evaluation dataset for DPO jobs"),
)


class Fireworks(HostedTarget):
    kind = "fireworks"
    provider = PROVIDER
    convert = staticmethod(to_row)
    job_body = staticmethod(job_request)
