"""Vertex AI supervised tuning of Gemini: JSONL of ``systemInstruction`` and ``contents``.

From "Prepare supervised fine-tuning data for Gemini models": ``contents`` holds the turns, each
``{"role": "user" | "model", "parts": [{"text": ...} | {"fileData": {"mimeType", "fileUri"}}]}``;
``systemInstruction`` holds the system prompt as parts (its role is ignored). Images are
``fileData`` with a Cloud Storage URI or a public HTTP(S) URL ("Tune function calling"): an
OpenAI ``image_url`` holding the image itself (``data:``) cannot be expressed. Tool calls follow
"Tune function calling": the tools as ``tools: [{"functionDeclarations": [...]}]`` (parameter
types in upper case, as its examples write them), a call as a model part ``{"functionCall":
{"name", "args"}}``, the tool's answer as a user part ``{"functionResponse": {"name",
"response"}}`` (a Content's role is user or model, per the API's Content reference). There is
no per-message weight. Limits (Gemini 2.5 Flash and Flash-Lite), from "About
supervised fine-tuning for Gemini models": 131,072 input and output training tokens per
example, at most 5,000 validation examples. Google publishes no offline tokenizer for Gemini:
tokens are estimated at 4 characters a token ("for Gemini models, a token is equivalent to
about 4 characters", Google's token guide).
"""

from __future__ import annotations

import json
import mimetypes

from transforms.targets.base import Counting, DatasetLimits, HostedModel, Provider, TargetRuleError
from transforms.targets.hosted import HostedTarget

DATA = "https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning-prepare"
FUNCTIONS = "https://cloud.google.com/vertex-ai/generative-ai/docs/models/tune-function-calling"
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
        mime = mimetypes.guess_type(url.split("?", 1)[0])[0]
        if not url.startswith(("gs://", "https://", "http://")) or mime is None:
            raise TargetRuleError("vertex_gemini_file_uri", f"{where}.content[{index}]: Gemini takes images as Cloud Storage "
                                  f"or public HTTP(S) URIs of a known file type, not {url[:40]!r}")
        parts.append({"fileData": {"mimeType": mime, "fileUri": url}})
    return parts


def _upper_types(schema):
    """JSON Schema types in upper case (``object`` -> ``OBJECT``), as Vertex's examples write them."""
    if isinstance(schema, dict):
        return {k: (v.upper() if k == "type" and isinstance(v, str) else _upper_types(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_upper_types(v) for v in schema]
    return schema


def _function_call(call: dict, where: str) -> dict:
    function = call.get("function", call)
    try:
        args = json.loads(function.get("arguments") or "{}")
    except json.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise TargetRuleError("vertex_gemini_function_args", f"{where}: a function call's arguments must be a JSON object")
    return {"functionCall": {"name": function["name"], "args": args}}


def _function_response(message: dict, name: str) -> dict:
    content = message.get("content")
    text = content if isinstance(content, str) else json.dumps(content)
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        value = None
    return {"functionResponse": {"name": name, "response": value if isinstance(value, dict) else {"content": text}}}


def to_row(example: dict, fmt: str) -> dict:
    if fmt == "completion":
        return {"contents": [{"role": "user", "parts": [{"text": example["prompt"]}]},
                             {"role": "model", "parts": [{"text": example["completion"]}]}]}
    system, contents, called = [], [], {}
    for index, message in enumerate(example["messages"]):
        role, where = message.get("role"), f"messages[{index}]"
        if message.get("weight", 1) == 0:
            raise TargetRuleError("vertex_gemini_weight", f"{where}: Gemini's format has no per-message weight (weight 0)")
        if message.get("name") and role != "function":
            raise TargetRuleError("vertex_gemini_name", f"{where}: Gemini's format has no message name")
        if role == "system":
            system.extend(_parts(message.get("content"), where))
        elif role == "assistant":
            calls = message.get("tool_calls") or ([message["function_call"]] if message.get("function_call") else [])
            parts = _parts(message.get("content"), where) if message.get("content") or not calls else []
            for call in calls:
                called[call.get("id", "")] = call.get("function", call)["name"]
                parts.append(_function_call(call, where))
            contents.append({"role": "model", "parts": parts})
        elif role in ("tool", "function"):
            name = message.get("name") or called.get(message.get("tool_call_id", ""), "")
            part = _function_response(message, name)
            if contents and contents[-1]["role"] == "user" and "functionResponse" in contents[-1]["parts"][-1]:
                contents[-1]["parts"].append(part)  # answers to parallel calls: one turn
            else:
                contents.append({"role": "user", "parts": [part]})
        elif role == "user":
            contents.append({"role": "user", "parts": _parts(message.get("content"), where)})
        else:
            raise TargetRuleError("vertex_gemini_role", f"{where}.role is {role!r}; Gemini's contents are user or model")
    if not contents or contents[0]["role"] != "user":
        # The page shows contents as the conversation history then the latest request, always
        # opening with the user's turn; an example with no user turn has nothing to answer.
        raise TargetRuleError("vertex_gemini_first_turn", "the conversation must start with the user's turn "
                              "(after the system instruction)")
    row = {"systemInstruction": {"parts": system}} if system else {}
    row["contents"] = contents
    functions = [t.get("function", t) for t in example.get("tools") or ()] + list(example.get("functions") or ())
    if functions:
        row["tools"] = [{"functionDeclarations": [
            {k: (_upper_types(v) if k == "parameters" else v) for k, v in f.items() if k in ("name", "description", "parameters")}
            for f in functions]}]
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


PROVIDER = Provider(
    title="Vertex AI Gemini",
    sources={"format": DATA, "tool calls and file URIs": FUNCTIONS, "models and limits": LIMITS, "job request": JOBS,
             "token estimate": TOKENS},
    formats=("chat", "completion"), models=MODELS,
    limits=DatasetLimits(max_train_examples=1_000_000, max_validation_examples=5_000, source=LIMITS),
    counting=Counting("estimate", chars_per_token=4.0, source=TOKENS),
    schema_file="vertex_gemini.schema.json",
    unpublished=("the minimum number of training examples (100 is recommended, not required)",
                 "limits of Gemini models other than 2.5 Flash and Flash-Lite (not in ftprep's table)"),
)


class VertexGemini(HostedTarget):
    kind = "vertex-gemini"
    provider = PROVIDER
    convert = staticmethod(to_row)
    job_body = staticmethod(job_request)
