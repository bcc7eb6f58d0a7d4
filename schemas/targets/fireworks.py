"""Fireworks AI supervised fine-tuning: JSONL of ``messages`` (OpenAI-compatible chat).

Rules, from "Supervised Fine Tuning - Text": 3 to 3 million examples; each message has a role
(system, user or assistant; a system message is optional and, if present, the first) and string
content, and may have ``weight`` 0 or 1 (0 skips the message). Tool calls are not part of the
schema documented there, and neither are the completion and preference formats on that page.
"""

from __future__ import annotations

from schemas.targets.base import (
    Counting, DatasetLimits, HostedTarget, TargetRuleError, flat_job_body, reject_tools, text_of,
)

DATA = "https://docs.fireworks.ai/fine-tuning/fine-tuning-models"
JOBS = "https://docs.fireworks.ai/tools-sdks/firectl/commands/create-supervised-fine-tuning-job"
ROLES = ("system", "user", "assistant")


def to_row(example: dict, fmt: str) -> dict:
    reject_tools(example, "fireworks_tools", "Fireworks")
    rows = []
    for index, message in enumerate(example["messages"]):
        role = message.get("role")
        if role not in ROLES:
            raise TargetRuleError("fireworks_role", f"messages[{index}].role is {role!r}; Fireworks takes system, user, assistant")
        if role == "system" and index != 0:
            raise TargetRuleError("fireworks_system_first", f"messages[{index}]: a system message must be the first")
        row = {"role": role, "content": text_of(message.get("content"), f"messages[{index}]", "fireworks_content")}
        if "weight" in message:
            row["weight"] = message["weight"]
        rows.append(row)
    return {"messages": rows}


def job_request(*, model: str, train_files, validation_files, n_epochs: int | None, suffix: str | None,
                example_format: str) -> dict:
    """The fields of ``firectl create sftj`` (the dataset ids as placeholders: Fireworks datasets
    are uploaded with ``firectl create dataset``)."""
    return flat_job_body({"model": "baseModel", "train": "dataset", "validation": "evaluationDataset",
                          "epochs": "epochs", "suffix": "outputModel"}, placeholder="dataset id", model=model,
                         train_files=train_files, validation_files=validation_files, n_epochs=n_epochs, suffix=suffix)


TARGET = HostedTarget(
    kind="fireworks", title="Fireworks AI", sources={"format and limits": DATA, "job request": JOBS},
    formats=("chat",), models={},
    limits=DatasetLimits(min_train_examples=3, max_train_examples=3_000_000, source=DATA),
    counting=Counting("estimate", chars_per_token=4.0,
                      source="no published ratio: 4 characters a token; give target.tokenizer for exact counts"),
    to_row=to_row, job_request=job_request, schema_file="fireworks.schema.json", open_model_list=True,
    unpublished=("the per-example token limit (the model's max context length, per model in Fireworks' list)",),
)
