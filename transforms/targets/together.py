"""Together AI fine-tuning: conversational JSONL (``messages``), prompt/completion, and DPO pairs
in OpenAI's preference shape.

Rules, from the data-preparation page: a message's role is system, user or assistant; the
conversation starts with system or user and then alternates user and assistant. The page shows
no tool calls, no per-message weight and only text content: ftprep rejects what it cannot
express there rather than guess. Tokens are counted exactly with the model's tokenizer when
``target.tokenizer`` names it (the models are open-weights: their tokenizers are published),
otherwise estimated at 4 characters a token.
"""

from __future__ import annotations

from transforms.targets.base import (
    Counting, DatasetLimits, Provider, TargetRuleError, flat_job_body, reject_tools, text_of, weights_of,
)
from transforms.targets.hosted import HostedTarget

DATA = "https://docs.together.ai/docs/fine-tuning/data-preparation"
PREFERENCE = "https://docs.together.ai/docs/fine-tuning/preference-tuning"
JOBS = "https://docs.together.ai/reference/post-fine-tunes"
ROLES = ("system", "user", "assistant")


def _messages(messages: list[dict], where: str = "messages") -> list[dict]:
    rows = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            raise TargetRuleError("together_role", f"{where}[{index}].role is {role!r}; Together takes system, user, assistant")
        rows.append({"role": role, "content": text_of(message.get("content"), f"{where}[{index}]", "together_content")})
    return rows


def _check_order(roles: list[str], *, opens_with_user: bool = True) -> None:
    """After an optional system message, user and assistant alternate. A conversation starts
    with the user; a preference pair's input may open with the assistant (the preference page's
    own example greets first), and always ends with the user, whom both outputs answer."""
    body = roles[1:] if roles and roles[0] == "system" else roles
    if not body or (opens_with_user and body[0] != "user"):
        raise TargetRuleError("together_order", "the conversation must start with system or user")
    first = body[0]
    for index, role in enumerate(body):
        expected = first if index % 2 == 0 else ("assistant" if first == "user" else "user")
        if role != expected:
            raise TargetRuleError("together_order", "after the system message, user and assistant must alternate")


def to_row(example: dict, fmt: str) -> dict:
    if fmt == "completion":
        return {"prompt": example["prompt"], "completion": example["completion"]}
    holder = example["input"] if fmt == "preference" else example
    reject_tools(holder, "together_tools", "Together")
    if 0 in weights_of(holder["messages"]):
        raise TargetRuleError("together_weight", "Together's format as documented has no per-message weight")
    messages = _messages(holder["messages"])
    if fmt == "chat":
        _check_order([m["role"] for m in messages])
        return {"messages": messages}
    _check_order([m["role"] for m in messages] + ["assistant"], opens_with_user=False)
    return {"input": {"messages": messages},
            "preferred_output": _messages(example["preferred_output"], "preferred_output"),
            "non_preferred_output": _messages(example["non_preferred_output"], "non_preferred_output")}


def job_request(*, model: str, train_files, validation_files, n_epochs: int | None, suffix: str | None,
                example_format: str) -> dict:
    """The body of ``POST /v1/fine-tunes`` (file ids as placeholders)."""
    body = flat_job_body({"model": "model", "train": "training_file", "validation": "validation_file",
                          "epochs": "n_epochs", "suffix": "suffix"}, placeholder="file id", model=model,
                         train_files=train_files, validation_files=validation_files, n_epochs=n_epochs, suffix=suffix)
    body["training_method"] = {"method": "dpo" if example_format == "preference" else "sft"}
    return body


PROVIDER = Provider(
    title="Together AI", sources={"format and rules": DATA, "preference pairs": PREFERENCE, "job request": JOBS},
    formats=("chat", "completion", "preference"), models={},
    limits=DatasetLimits(source=DATA),
    counting=Counting("estimate", chars_per_token=4.0,
                      source="no published ratio: 4 characters a token; give target.tokenizer for exact counts"),
    schema_file="together.schema.json", open_model_list=True,
    unpublished=("the per-example token limit (the model's context length)", "minimum and maximum examples per file",
                 "tool calls and per-message weights in the conversational format"),
)


class Together(HostedTarget):
    kind = "together"
    provider = PROVIDER
    convert = staticmethod(to_row)
    job_body = staticmethod(job_request)
