"""The fine-tuning example formats: what the platforms accept, in one place.

Sources: OpenAI's fine-tuning guides (chat, function/tool calling, vision, DPO) and the
API reference for ``POST /v1/fine_tuning/jobs``; the legacy prompt/completion format of
``babbage-002``/``davinci-002``.
"""

from __future__ import annotations

import json
from typing import Any

CHAT = "chat"
COMPLETION = "completion"
PREFERENCE = "preference"
FORMATS = (CHAT, COMPLETION, PREFERENCE)

ROLES = frozenset({"system", "user", "assistant", "tool", "function"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "function_call", "tool_call_id"})
# An assistant's reasoning, for the open-weights targets: gpt-oss's chat template reads
# ``thinking``, Qwen3's and DeepSeek's ``reasoning_content``.
REASONING_KEYS = frozenset({"thinking", "reasoning_content"})
CHAT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})
COMPLETION_KEYS = frozenset({"prompt", "completion"})
PREFERENCE_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
PREFERENCE_INPUT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
# Older names accepted on input; output always uses the current ones.
LEGACY_PREFERENCE_KEYS = {
    "preferred_completion": "preferred_output",
    "non_preferred_completion": "non_preferred_output",
}

TOOL_CALL_KEYS = frozenset({"id", "type", "function"})
FUNCTION_CALL_KEYS = frozenset({"name", "arguments"})
TOOL_KEYS = frozenset({"type", "function"})
FUNCTION_DEFINITION_KEYS = frozenset({"name", "description", "parameters", "strict"})

CONTENT_PART_TYPES = frozenset({"text", "image_url"})
IMAGE_DETAILS = frozenset({"auto", "low", "high"})
MAX_IMAGES_PER_EXAMPLE = 10


def normalize_preference(example: dict[str, Any]) -> dict[str, Any]:
    """Rename the legacy ``*_completion`` keys to ``*_output`` (when the current name is absent)."""
    if not any(old in example for old in LEGACY_PREFERENCE_KEYS):
        return example
    renamed = {}
    for key, value in example.items():
        new = LEGACY_PREFERENCE_KEYS.get(key)
        if new is not None and new not in example:
            renamed[new] = value
        else:
            renamed[key] = value
    return renamed


EXAMPLE_KEYS = {CHAT: CHAT_KEYS, COMPLETION: COMPLETION_KEYS, PREFERENCE: PREFERENCE_KEYS}


def known_keys_only(example: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The example without the top-level keys its format does not define (the example itself
    when it has none): a row's other columns are not training data, and may be personal data."""
    known = EXAMPLE_KEYS[fmt]
    source = example.get("input") if fmt == PREFERENCE else None
    extra_input = isinstance(source, dict) and not source.keys() <= PREFERENCE_INPUT_KEYS
    if example.keys() <= known and not extra_input:
        return example
    kept = {key: value for key, value in example.items() if key in known}
    if extra_input:
        kept["input"] = {key: value for key, value in source.items() if key in PREFERENCE_INPUT_KEYS}
    return kept


def detect_format(example: Any) -> str | None:
    """The format an example is written in, from its top-level keys; None if it fits none."""
    if not isinstance(example, dict):
        return None
    if "messages" in example:
        return CHAT
    if "input" in example and any(k in example for k in ("preferred_output", *LEGACY_PREFERENCE_KEYS)):
        return PREFERENCE
    if "prompt" in example or "completion" in example:
        return COMPLETION
    return None


def example_texts(example: dict[str, Any]) -> list[str]:
    """The text contents of an example: message contents, prompt and completion, preferred answers."""
    if "prompt" in example:
        return [v for v in (example.get("prompt"), example.get("completion")) if isinstance(v, str)]
    messages = list(example.get("messages") or (example.get("input") or {}).get("messages") or ())
    messages += list(example.get("preferred_output") or ()) + list(example.get("non_preferred_output") or ())
    texts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(part["text"] for part in content if part.get("type") == "text")
    return texts


def message_count(example: dict, fmt: str) -> int:
    """Messages in a valid example (a preference pair counts its input and one answer); 0 for completion."""
    if fmt == CHAT:
        return len(example["messages"])
    if fmt == PREFERENCE:
        return len(example["input"]["messages"]) + 1
    return 0


def trainer_row(example: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The row TRL's trainers read for this example (the open-weights targets' output).

    Chat (``messages``, ``tools``) and prompt/completion rows are already in TRL's
    conversational and standard shapes; a preference example becomes TRL's conversational
    preference row: ``prompt`` (the input messages), ``chosen`` and ``rejected`` (one assistant
    message each). OpenAI's per-message ``weight`` is left out: TRL has none (the examples that
    had a weight of 0 are counted under the warning ``weight_not_applied``). Source: TRL's
    "Dataset formats and types" guide.
    """
    if fmt == COMPLETION:
        return example
    if fmt == CHAT:
        return {**example, "messages": trainer_messages(example["messages"])}
    source = example["input"]
    row = {"prompt": trainer_messages(source["messages"]), "chosen": trainer_messages(example["preferred_output"]),
           "rejected": trainer_messages(example["non_preferred_output"])}
    if source.get("tools"):
        row["tools"] = source["tools"]
    return row


def trainer_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-shaped messages as TRL and ``transformers`` chat templates take them: no ``weight``;
    an assistant turn that only calls tools has ``content: ""`` (OpenAI allows it absent or null;
    templates such as Qwen3's read ``message.content``); and each tool call's ``arguments`` is the
    object its JSON string holds (templates apply ``| tojson`` to it: a string would train the model
    to emit JSON inside a JSON string). Sources: transformers' "Tool use" chat-template guide, TRL's
    "Dataset formats" guide (tool calling)."""
    return [_for_trainer(message) for message in without_weights(messages)]


def _for_trainer(message: dict[str, Any]) -> dict[str, Any]:
    calls = message.get("tool_calls")
    if not calls:
        return message
    converted = dict(message)
    if converted.get("content") is None:
        converted["content"] = ""
    converted["tool_calls"] = [_call_with_object_arguments(call) for call in calls]
    return converted


def _call_with_object_arguments(call: Any) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    arguments = function.get("arguments") if isinstance(function, dict) else None
    if not isinstance(arguments, str):
        return call
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return call  # validation rejects what is not JSON; nothing to convert
    return {**call, "function": {**function, "arguments": parsed}}


def without_weights(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages without OpenAI's per-message ``weight``, which chat templates and TRL lack."""
    return [{k: v for k, v in m.items() if k != "weight"} if "weight" in m else m for m in messages]


# What the trainer trains on, by output.tokens (the recipe's OutputSpec):
# trl: TRL's processed columns — SFTTrainer treats a dataset with input_ids as tokenized and folds
#   assistant_masks (and, with completion_only_loss, completion_mask) into its labels;
# labels: input_ids, attention_mask and labels with -100 where nothing is trained — Axolotl's and
#   LLaMA-Factory's prepared datasets, Together's pre-tokenized files.
TOKEN_FORMS = ("trl", "labels")
IGNORED_LABEL = -100


def tokenized_row(ids: list[int], trained: list[int], fmt: str, form: str) -> dict[str, list[int]]:
    """The tokenized row for one example: ``ids`` and ``trained`` (1 where the loss trains)."""
    if form == "trl":
        return {"input_ids": ids, ("completion_mask" if fmt == COMPLETION else "assistant_masks"): trained}
    return {"input_ids": ids, "attention_mask": [1] * len(ids),
            "labels": [token if bit else IGNORED_LABEL for token, bit in zip(ids, trained)]}


def trained_bits(row: dict[str, list[int]]) -> list[int]:
    """1 where a tokenized row's loss trains, whichever form it is in."""
    if "labels" in row:
        return [int(label != IGNORED_LABEL) for label in row["labels"]]
    return row.get("assistant_masks") or row.get("completion_mask") or []


def truncated_row(row: dict[str, list[int]], length: int) -> dict[str, list[int]]:
    """Every column of a tokenized row cut to its first ``length`` tokens (tokens.over_limit: truncate)."""
    return {key: values[:length] for key, values in row.items()}
