"""The platform's rules for a fine-tuning example, as plain functions that never raise
(the ``ValidateExamples`` stage, ``transforms/validate.py``, applies them).

Each validator returns ``Findings``: the errors that reject the example (codes from
``schemas.records``, messages that name the message index and key) and the warnings that
only get counted. The token limit is checked where tokens are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.formats import (
    CHAT,
    CHAT_KEYS,
    COMPLETION,
    COMPLETION_KEYS,
    CONTENT_PART_TYPES,
    FUNCTION_CALL_KEYS,
    FUNCTION_DEFINITION_KEYS,
    IMAGE_DETAILS,
    MAX_IMAGES_PER_EXAMPLE,
    MESSAGE_KEYS,
    PREFERENCE,
    REASONING_KEYS,
    PREFERENCE_INPUT_KEYS,
    PREFERENCE_KEYS,
    ROLES,
    TOOL_CALL_KEYS,
    TOOL_KEYS,
)
from schemas.records import (
    BLANK_CONTENT,
    DATA_TYPE,
    EXAMPLE_MISSING_ASSISTANT_MESSAGE,
    INVALID_COMPLETION,
    INVALID_IMAGE,
    INVALID_PREFERENCE,
    INVALID_TOOL_CALL,
    INVALID_WEIGHT,
    MESSAGE_MISSING_KEY,
    MESSAGE_UNRECOGNIZED_KEY,
    MISSING_CONTENT,
    MISSING_MESSAGES_LIST,
    MISSING_SYSTEM_MESSAGE,
    MISSING_USER_MESSAGE,
    NO_TRAINED_MESSAGE,
    TRAILING_UNTRAINED_MESSAGES,
    UNRECOGNIZED_EXAMPLE_KEY,
    UNRECOGNIZED_ROLE,
    WEIGHT_NOT_APPLIED,
    Rejection,
)


@dataclass
class Findings:
    errors: list[Rejection] = field(default_factory=list)
    warnings: set[str] = field(default_factory=set)
    # The platform accepts whitespace-only content; rendered from a template it is a data bug.
    reject_blank: bool = False
    # For the open-weights targets: a message may carry its reasoning, and weight 0 is not applied.
    open_weights: bool = False

    @property
    def message_keys(self) -> frozenset:
        return MESSAGE_KEYS | REASONING_KEYS if self.open_weights else MESSAGE_KEYS

    def error(self, code: str, message: str) -> None:
        self.errors.append(Rejection(code, message))

    def blank(self, code: str, where: str) -> None:
        if self.reject_blank:
            self.error(code, f"{where} is only whitespace")
        else:
            self.warnings.add(BLANK_CONTENT)

    @property
    def codes(self) -> list[str]:
        return sorted({e.code for e in self.errors})


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_json_string(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return True


def _check_named_function(value: Any, where: str, keys: frozenset, found: Findings) -> bool:
    """An object with only ``keys`` and a non-empty ``name``; False when it is not an object at all."""
    if not isinstance(value, dict):
        found.error(INVALID_TOOL_CALL, f"{where} is {_type(value)}, expected an object")
        return False
    for key in sorted(set(value) - keys):
        found.error(INVALID_TOOL_CALL, f"{where} has unrecognized key {key!r}")
    if not (isinstance(value.get("name"), str) and value["name"]):
        found.error(INVALID_TOOL_CALL, f"{where}.name must be a non-empty string")
    return True


def _check_function_call(call: Any, where: str, found: Findings) -> None:
    """``{"name": str, "arguments": str holding JSON}``: a tool call's function or a legacy function_call."""
    if _check_named_function(call, where, FUNCTION_CALL_KEYS, found) and not _is_json_string(call.get("arguments")):
        found.error(INVALID_TOOL_CALL, f"{where}.arguments must be a string holding JSON")


def _check_tool_calls(calls: Any, where: str, found: Findings) -> list[str]:
    """Validate ``tool_calls``; return the ids it declares."""
    if not isinstance(calls, list) or not calls:
        found.error(INVALID_TOOL_CALL, f"{where} must be a non-empty list")
        return []
    ids = []
    for index, call in enumerate(calls):
        at = f"{where}[{index}]"
        if not isinstance(call, dict):
            found.error(INVALID_TOOL_CALL, f"{at} is {_type(call)}, expected an object")
            continue
        for key in sorted(set(call) - TOOL_CALL_KEYS):
            found.error(INVALID_TOOL_CALL, f"{at} has unrecognized key {key!r}")
        if isinstance(call.get("id"), str) and call["id"]:
            ids.append(call["id"])
        else:
            found.error(INVALID_TOOL_CALL, f"{at}.id must be a non-empty string")
        if call.get("type") != "function":
            found.error(INVALID_TOOL_CALL, f"{at}.type is {call.get('type')!r}, expected 'function'")
        _check_function_call(call.get("function"), f"{at}.function", found)
    return ids


def _check_content_parts(parts: list, role: Any, where: str, found: Findings) -> int:
    """Validate a list of content parts; return how many images it holds."""
    images = 0
    if not parts:
        found.error(MISSING_CONTENT, f"{where} is an empty list")
    for index, part in enumerate(parts):
        at = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in CONTENT_PART_TYPES:
            found.error(MISSING_CONTENT, f"{at} must be an object with type 'text' or 'image_url'")
        elif kind == "text":
            if not (isinstance(part.get("text"), str) and part["text"]):
                found.error(MISSING_CONTENT, f"{at}.text must be a non-empty string")
        else:
            images += 1
            if role != "user":
                found.error(INVALID_IMAGE, f"{at}: images are only allowed in user messages, not {role}")
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not (isinstance(url, str) and url.startswith(("https://", "http://", "data:image/"))):
                found.error(INVALID_IMAGE, f"{at}.image_url.url must be an http(s) URL or a data:image/ URL")
            elif url.startswith("data:image/") and ";base64," not in url:
                found.error(INVALID_IMAGE, f"{at}.image_url.url is a data URL without ';base64,'")
            if isinstance(image, dict) and image.get("detail", "auto") not in IMAGE_DETAILS:
                found.error(INVALID_IMAGE, f"{at}.image_url.detail is {image['detail']!r}; expected auto, low or high")
    return images


def _check_message(message: Any, where: str, found: Findings, call_ids: set[str]) -> int:
    """Validate one message; return how many images it holds. ``call_ids`` collects tool-call ids."""
    if not isinstance(message, dict):
        found.error(DATA_TYPE, f"{where} is {_type(message)}, expected an object")
        return 0
    role = message.get("role")
    calls_tools = "tool_calls" in message or "function_call" in message
    if "role" not in message:
        found.error(MESSAGE_MISSING_KEY, f"{where} has no 'role'")
    elif not (isinstance(role, str) and role in ROLES):
        found.error(UNRECOGNIZED_ROLE, f"{where}.role is {role!r}; expected one of {', '.join(sorted(ROLES))}")
    for key in sorted(set(message) - found.message_keys):
        found.error(MESSAGE_UNRECOGNIZED_KEY, f"{where} has unrecognized key {key!r}")

    images = 0
    content = message.get("content")
    if "content" not in message and not (role == "assistant" and calls_tools):
        found.error(MESSAGE_MISSING_KEY, f"{where} has no 'content'")
    elif content is None:
        if not (role == "assistant" and calls_tools):
            found.error(MISSING_CONTENT, f"{where}.content is null; only an assistant message with tool_calls may omit it")
    elif isinstance(content, str):
        if not content and role == "assistant" and calls_tools:
            pass  # a turn that only calls tools: "" says so as null does (transformers' and TRL's shape)
        elif not content:
            found.error(MISSING_CONTENT, f"{where}.content is empty")
        elif not content.strip():
            found.blank(MISSING_CONTENT, f"{where}.content")
    elif isinstance(content, list) and role != "tool":
        images = _check_content_parts(content, role, f"{where}.content", found)
    else:
        found.error(MISSING_CONTENT, f"{where}.content is {_type(content)}, expected a string")

    if "name" in message and not (isinstance(message["name"], str) and message["name"]):
        found.error(MESSAGE_MISSING_KEY, f"{where}.name must be a non-empty string")
    if "weight" in message:
        weight = message["weight"]
        if role != "assistant":
            found.error(INVALID_WEIGHT, f"{where}.weight is only allowed on assistant messages")
        elif type(weight) is not int or weight not in (0, 1):
            found.error(INVALID_WEIGHT, f"{where}.weight is {weight!r}; expected 0 or 1")
        elif weight == 0 and found.open_weights:
            found.warnings.add(WEIGHT_NOT_APPLIED)
    if calls_tools and role != "assistant":
        found.error(INVALID_TOOL_CALL, f"{where}: only assistant messages may call tools, not {role}")
    if "tool_calls" in message and "function_call" in message:
        found.error(INVALID_TOOL_CALL, f"{where} has both tool_calls and function_call")
    if "tool_calls" in message:
        call_ids.update(_check_tool_calls(message["tool_calls"], f"{where}.tool_calls", found))
    if "function_call" in message:
        _check_function_call(message["function_call"], f"{where}.function_call", found)
    if role == "tool":
        tool_call_id = message.get("tool_call_id")
        if not isinstance(tool_call_id, str) or not tool_call_id:
            found.error(MESSAGE_MISSING_KEY, f"{where} is a tool message without a 'tool_call_id'")
        elif tool_call_id not in call_ids:
            found.error(INVALID_TOOL_CALL, f"{where}.tool_call_id {tool_call_id!r} answers no earlier tool call")
    elif "tool_call_id" in message:
        found.error(INVALID_TOOL_CALL, f"{where}.tool_call_id is only allowed on tool messages")
    if role == "function" and "name" not in message:
        found.error(MESSAGE_MISSING_KEY, f"{where} is a function message without a 'name'")
    return images


def _check_messages(messages: Any, where: str, found: Findings) -> tuple[list[dict], int]:
    """Validate a message list; return its well-formed messages and its image count."""
    call_ids: set[str] = set()
    images = 0
    for index, message in enumerate(messages):
        images += _check_message(message, f"{where}[{index}]", found, call_ids)
    return [m for m in messages if isinstance(m, dict)], images


def _check_tools(example: dict, where: str, found: Findings) -> None:
    tools = example.get("tools")
    if "tools" in example:
        if not isinstance(tools, list):
            found.error(INVALID_TOOL_CALL, f"{where}tools is {_type(tools)}, expected a list")
            tools = []
        for index, tool in enumerate(tools):
            at = f"{where}tools[{index}]"
            if not isinstance(tool, dict) or tool.get("type") != "function" or set(tool) - TOOL_KEYS:
                found.error(INVALID_TOOL_CALL, f"{at} must be {{'type': 'function', 'function': {{...}}}}")
                continue
            _check_function_definition(tool.get("function"), f"{at}.function", found)
    if "functions" in example:
        functions = example["functions"]
        if not isinstance(functions, list):
            found.error(INVALID_TOOL_CALL, f"{where}functions is {_type(functions)}, expected a list")
        else:
            for index, function in enumerate(functions):
                _check_function_definition(function, f"{where}functions[{index}]", found)
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        found.error(INVALID_TOOL_CALL, f"{where}parallel_tool_calls must be true or false")


def _check_function_definition(function: Any, where: str, found: Findings) -> None:
    if not _check_named_function(function, where, FUNCTION_DEFINITION_KEYS, found):
        return
    if "parameters" in function and not isinstance(function["parameters"], dict):
        found.error(INVALID_TOOL_CALL, f"{where}.parameters must be a JSON Schema object")


def _warn_unrecognized_keys(example: dict, known: frozenset, found: Findings) -> None:
    if set(example) - known:
        found.warnings.add(UNRECOGNIZED_EXAMPLE_KEY)


def validate_chat(example: Any, *, reject_blank: bool = False, open_weights: bool = False) -> Findings:
    found = Findings(reject_blank=reject_blank, open_weights=open_weights)
    if not isinstance(example, dict):
        found.error(DATA_TYPE, f"example is {_type(example)}, expected an object")
        return found
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        found.error(MISSING_MESSAGES_LIST, "example has no non-empty 'messages' list")
        return found
    _warn_unrecognized_keys(example, CHAT_KEYS, found)
    messages, images = _check_messages(messages, "messages", found)
    _check_tools(example, "", found)
    if images > MAX_IMAGES_PER_EXAMPLE:
        found.error(INVALID_IMAGE, f"example has {images} images; at most {MAX_IMAGES_PER_EXAMPLE} are allowed")

    roles = [m.get("role") for m in messages]
    if "assistant" not in roles:
        found.error(EXAMPLE_MISSING_ASSISTANT_MESSAGE, "example has no assistant message")
    else:
        assistants = [m for m in messages if m.get("role") == "assistant"]
        if not found.open_weights and all(m.get("weight", 1) == 0 for m in assistants):
            found.warnings.add(NO_TRAINED_MESSAGE)
        if roles[-1] != "assistant":
            found.warnings.add(TRAILING_UNTRAINED_MESSAGES)
    if "system" not in roles:
        found.warnings.add(MISSING_SYSTEM_MESSAGE)
    if "user" not in roles:
        found.warnings.add(MISSING_USER_MESSAGE)
    return found


def validate_completion(example: Any, *, reject_blank: bool = False, open_weights: bool = False) -> Findings:
    found = Findings(reject_blank=reject_blank, open_weights=open_weights)
    if not isinstance(example, dict):
        found.error(DATA_TYPE, f"example is {_type(example)}, expected an object")
        return found
    for key in ("prompt", "completion"):
        if not isinstance(example.get(key), str):
            found.error(INVALID_COMPLETION, f"{key!r} is {_type(example.get(key))}, expected a string")
    if example.get("completion") == "":
        found.error(INVALID_COMPLETION, "'completion' is empty")
    elif isinstance(example.get("completion"), str) and not example["completion"].strip():
        found.blank(INVALID_COMPLETION, "'completion'")
    for key in sorted(set(example) - COMPLETION_KEYS):
        found.error(INVALID_COMPLETION, f"unrecognized key {key!r}")
    return found


def _check_preferred(value: Any, key: str, found: Findings) -> None:
    if not isinstance(value, list) or len(value) != 1:
        found.error(INVALID_PREFERENCE, f"{key} must be a list of exactly one assistant message")
        return
    message = value[0]
    if isinstance(message, dict) and message.get("role") != "assistant":
        found.error(INVALID_PREFERENCE, f"{key}[0].role is {message.get('role')!r}, expected 'assistant'")
    _check_message(message, f"{key}[0]", found, set())


def validate_preference(example: Any, *, reject_blank: bool = False, open_weights: bool = False) -> Findings:
    """DPO: ``input.messages`` (+ tools) and one preferred and one non-preferred assistant message."""
    found = Findings(reject_blank=reject_blank, open_weights=open_weights)
    if not isinstance(example, dict):
        found.error(DATA_TYPE, f"example is {_type(example)}, expected an object")
        return found
    for key in sorted(set(example) - PREFERENCE_KEYS):
        found.error(INVALID_PREFERENCE, f"unrecognized key {key!r}")
    source = example.get("input")
    if not isinstance(source, dict):
        found.error(INVALID_PREFERENCE, f"input is {_type(source)}, expected an object with 'messages'")
    else:
        for key in sorted(set(source) - PREFERENCE_INPUT_KEYS):
            found.error(INVALID_PREFERENCE, f"input has unrecognized key {key!r}")
        messages = source.get("messages")
        if not isinstance(messages, list) or not messages:
            found.error(MISSING_MESSAGES_LIST, "input has no non-empty 'messages' list")
        else:
            messages, _ = _check_messages(messages, "input.messages", found)
            roles = [m.get("role") for m in messages]
            if "system" not in roles:
                found.warnings.add(MISSING_SYSTEM_MESSAGE)
            if "user" not in roles:
                found.warnings.add(MISSING_USER_MESSAGE)
        _check_tools(source, "input.", found)
    for key in ("preferred_output", "non_preferred_output"):
        _check_preferred(example.get(key), key, found)
    if (
        not found.errors
        and example["preferred_output"][0].get("content") == example["non_preferred_output"][0].get("content")
        and example["preferred_output"][0].get("tool_calls") == example["non_preferred_output"][0].get("tool_calls")
    ):
        found.error(INVALID_PREFERENCE, "preferred_output and non_preferred_output are identical")
    return found


VALIDATORS = {CHAT: validate_chat, COMPLETION: validate_completion, PREFERENCE: validate_preference}


def validate_example(example: Any, fmt: str, *, reject_blank: bool = False, open_weights: bool = False) -> Findings:
    """``open_weights`` (targets hf and gpt-oss): an assistant message may carry its reasoning
    (``thinking``, as open-weights chat templates read it), which OpenAI's format does not have,
    and a weight of 0 is a warning (``weight_not_applied``): TRL has no per-message weight."""
    return VALIDATORS[fmt](example, reject_blank=reject_blank, open_weights=open_weights)
