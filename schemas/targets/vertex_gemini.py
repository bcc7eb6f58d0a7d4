"""Vertex AI supervised tuning of Gemini: JSONL of ``systemInstruction`` and ``contents``.

From "Prepare supervised fine-tuning data for Gemini models": ``contents`` holds the turns, each
``{"role": "user" | "model", "parts": [{"text": ...} | {"fileData": {"mimeType", "fileUri"}}]}``;
``systemInstruction`` holds the system prompt as parts (its role is ignored). Images are
``fileData`` with a Cloud Storage URI: an OpenAI ``image_url`` that is not ``gs://`` cannot be
expressed. Gemini has function-call parts, but ftprep does not convert tool calls yet: they are
rejected. There is no per-message weight. Limits (Gemini 2.5 Flash and Flash-Lite), from "About
supervised fine-tuning for Gemini models": 131,072 input and output training tokens per
example, at most 5,000 validation examples. Google publishes no offline tokenizer for Gemini:
tokens are estimated at 4 characters a token ("for Gemini models, a token is equivalent to
about 4 characters", Google's token guide).
"""

from __future__ import annotations

import mimetypes

from schemas.targets.base import Counting, DatasetLimits, HostedModel, HostedTarget, TargetRuleError, reject_tools

DATA = "https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning-prepare"
LIMITS = "https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning"
JOBS = "https://cloud.google.com/ruby/docs/reference/google-cloud-ai_platform-v1/latest/Google-Cloud-AIPlatform-V1-SupervisedTuningSpec"
TOKENS = "https://ai.google.dev/gemini-api/docs/tokens"
MODELS = {name: HostedModel(name, 131_072, LIMITS) for name in ("gemini-2.5-flash", "gemini-2.5-flash-lite")}
ROLES = {"user": "user", "assistant": "model"}


def _parts(content, where: str) -> list[dict]:
    if content is None or isinstance(content, str):
        return [{"text": content or ""}]
    parts = []
    for index, part in enumerate(content):
        if part.get("type") == "text":
            parts.append({"text": part.get("text", "")})
            continue
        url = (part.get("image_url") or {}).get("url", "")
        if not url.startswith("gs://"):
            raise TargetRuleError("vertex_gemini_file_uri",
                                  f"{where}.content[{index}]: Gemini takes images as Cloud Storage URIs (gs://), not {url[:40]!r}")
        mime = mimetypes.guess_type(url)[0] or "application/octet-stream"
        parts.append({"fileData": {"mimeType": mime, "fileUri": url}})
    return parts


def to_row(example: dict, fmt: str) -> dict:
    if fmt == "completion":
        return {"contents": [{"role": "user", "parts": [{"text": example["prompt"]}]},
                             {"role": "model", "parts": [{"text": example["completion"]}]}]}
    reject_tools(example, "vertex_gemini_tools", "Vertex AI Gemini (as ftprep converts it)")
    system, contents = [], []
    for index, message in enumerate(example["messages"]):
        role, where = message.get("role"), f"messages[{index}]"
        if message.get("weight", 1) == 0:
            raise TargetRuleError("vertex_gemini_weight", f"{where}: Gemini's format has no per-message weight (weight 0)")
        if message.get("name"):
            raise TargetRuleError("vertex_gemini_name", f"{where}: Gemini's format has no message name")
        if role == "system":
            system.extend(_parts(message.get("content"), where))
        elif role in ROLES:
            contents.append({"role": ROLES[role], "parts": _parts(message.get("content"), where)})
        else:
            raise TargetRuleError("vertex_gemini_role", f"{where}.role is {role!r}; Gemini's contents are user or model")
    row = {"systemInstruction": {"parts": system}} if system else {}
    row["contents"] = contents
    return row


def job_request(*, model: str, train_files, validation_files, n_epochs: int | None, suffix: str | None,
                example_format: str) -> dict:
    """The body of ``tuningJobs.create`` (the files' Cloud Storage URIs as placeholders)."""
    spec = {"trainingDatasetUri": f"gs://<bucket>/{train_files[0]}" if len(train_files) == 1
            else f"<one gs:// file of {' + '.join(train_files)}, concatenated>"}
    if validation_files:
        spec["validationDatasetUri"] = (f"gs://<bucket>/{validation_files[0]}" if len(validation_files) == 1
                                        else f"<one gs:// file of {' + '.join(validation_files)}, concatenated>")
    if n_epochs is not None:
        spec["hyperParameters"] = {"epochCount": n_epochs}
    body = {"baseModel": model, "supervisedTuningSpec": spec}
    if suffix:
        body["tunedModelDisplayName"] = suffix
    return body


TARGET = HostedTarget(
    kind="vertex-gemini", title="Vertex AI Gemini",
    sources={"format": DATA, "models and limits": LIMITS, "job request": JOBS, "token estimate": TOKENS},
    formats=("chat", "completion"), models=MODELS,
    limits=DatasetLimits(max_train_examples=1_000_000, max_validation_examples=5_000, source=LIMITS),
    counting=Counting("estimate", chars_per_token=4.0, source=TOKENS),
    to_row=to_row, job_request=job_request, schema_file="vertex_gemini.schema.json",
    unpublished=("the minimum number of training examples (100 is recommended, not required)",
                 "limits of Gemini models other than 2.5 Flash and Flash-Lite (not in ftprep's table)"),
)
