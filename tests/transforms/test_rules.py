"""Golden cases: one or more per rejection code and per warning, for every format."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.rules import validate_chat, validate_completion, validate_example, validate_preference

SYSTEM = {"role": "system", "content": "You are helpful."}
USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"order": 42}'}}
CALLER = {"role": "assistant", "content": None, "tool_calls": [CALL]}
TOOL_REPLY = {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'}
TOOL = {"type": "function", "function": {"name": "lookup", "description": "Find an order.",
                                         "parameters": {"type": "object", "properties": {"order": {"type": "integer"}}}}}
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}


def chat(*messages, **extra):
    return {"messages": list(messages), **extra}


def with_images(n):
    return {"role": "user", "content": [{"type": "text", "text": "what is this?"}] + [IMAGE] * n}


VALID_CHATS = {
    "plain": chat(SYSTEM, USER, ASSISTANT),
    "weights": chat(SYSTEM, USER, {**ASSISTANT, "weight": 0}, USER, {**ASSISTANT, "weight": 1}),
    "named": chat(SYSTEM, {**USER, "name": "ada"}, ASSISTANT),
    "tool round trip": chat(SYSTEM, USER, CALLER, TOOL_REPLY, ASSISTANT, tools=[TOOL], parallel_tool_calls=False),
    "legacy function call": chat(
        SYSTEM, USER, {"role": "assistant", "content": None, "function_call": {"name": "lookup", "arguments": "{}"}},
        {"role": "function", "name": "lookup", "content": "{}"}, ASSISTANT,
        functions=[{"name": "lookup", "parameters": {"type": "object"}}],
    ),
    "ten images": chat(SYSTEM, with_images(10), ASSISTANT),
    "data url image": chat(SYSTEM, {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]}, ASSISTANT),
}


@pytest.mark.parametrize("name", sorted(VALID_CHATS))
def test_valid_chats(name):
    found = validate_chat(VALID_CHATS[name])
    assert found.errors == [] and found.warnings == set()


CHAT_ERRORS = [
    ("not an object", [1], ["data_type"]),
    ("no messages", {}, ["missing_messages_list"]),
    ("empty messages", {"messages": []}, ["missing_messages_list"]),
    ("messages not a list", {"messages": "hi"}, ["missing_messages_list"]),
    ("message not an object", chat("hi", ASSISTANT), ["data_type"]),
    ("no role", chat({"content": "x"}, ASSISTANT), ["message_missing_key"]),
    ("no content", chat(USER, {"role": "assistant"}), ["message_missing_key"]),
    ("tool without id", chat(USER, CALLER, {"role": "tool", "content": "x"}, ASSISTANT), ["message_missing_key"]),
    ("function without name", chat(USER, {"role": "function", "content": "x"}, ASSISTANT), ["message_missing_key"]),
    ("unknown key", chat(USER, {**ASSISTANT, "mood": "happy"}), ["message_unrecognized_key"]),
    ("unknown role", chat(USER, {"role": "agent", "content": "x"}, ASSISTANT), ["unrecognized_role"]),
    ("unhashable role", chat({"role": [], "content": "x"}, ASSISTANT), ["unrecognized_role"]),
    ("empty content", chat(USER, {**ASSISTANT, "content": ""}), ["missing_content"]),
    ("null content", chat(USER, {**ASSISTANT, "content": None}), ["missing_content"]),
    ("number content", chat(USER, {**ASSISTANT, "content": 3}), ["missing_content"]),
    ("empty text part", chat({"role": "user", "content": [{"type": "text", "text": ""}]}, ASSISTANT), ["missing_content"]),
    ("unknown part", chat({"role": "user", "content": [{"type": "audio"}]}, ASSISTANT), ["missing_content"]),
    ("no assistant", chat(SYSTEM, USER), ["example_missing_assistant_message"]),
    ("weight 2", chat(USER, {**ASSISTANT, "weight": 2}), ["invalid_weight"]),
    ("weight bool", chat(USER, {**ASSISTANT, "weight": True}), ["invalid_weight"]),
    ("weight on user", chat({**USER, "weight": 1}, ASSISTANT), ["invalid_weight"]),
    ("arguments not JSON", chat(USER, {**CALLER, "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{oops"}}]}, TOOL_REPLY, ASSISTANT), ["invalid_tool_call"]),
    ("arguments an object", chat(USER, {**CALLER, "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {}}}]}, TOOL_REPLY, ASSISTANT), ["invalid_tool_call"]),
    ("call type", chat(USER, {**CALLER, "tool_calls": [{**CALL, "type": "code"}]}, TOOL_REPLY, ASSISTANT), ["invalid_tool_call"]),
    ("call without id", chat(USER, {**CALLER, "tool_calls": [{"type": "function", "function": CALL["function"]}]}, ASSISTANT), ["invalid_tool_call"]),
    ("empty tool_calls", chat(USER, {**CALLER, "tool_calls": []}, ASSISTANT), ["invalid_tool_call"]),
    ("user calls a tool", chat({**USER, "tool_calls": [CALL]}, ASSISTANT), ["invalid_tool_call"]),
    ("reply to unknown call", chat(USER, CALLER, {**TOOL_REPLY, "tool_call_id": "call_9"}, ASSISTANT), ["invalid_tool_call"]),
    ("both call styles", chat(USER, {**CALLER, "function_call": {"name": "f", "arguments": "{}"}}, TOOL_REPLY, ASSISTANT), ["invalid_tool_call"]),
    ("tools not a list", chat(USER, ASSISTANT, tools={"a": 1}), ["invalid_tool_call"]),
    ("tool without function type", chat(USER, ASSISTANT, tools=[{"type": "retrieval"}]), ["invalid_tool_call"]),
    ("parallel not bool", chat(USER, ASSISTANT, parallel_tool_calls="yes"), ["invalid_tool_call"]),
    ("image in assistant", chat(USER, {"role": "assistant", "content": [IMAGE]}), ["invalid_image"]),
    ("image url scheme", chat({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}]}, ASSISTANT), ["invalid_image"]),
    ("image detail", chat({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "max"}}]}, ASSISTANT), ["invalid_image"]),
    ("data url not base64", chat({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,xx"}}]}, ASSISTANT), ["invalid_image"]),
    ("eleven images", chat(SYSTEM, with_images(11), ASSISTANT), ["invalid_image"]),
]


@pytest.mark.parametrize("name, example, expected", CHAT_ERRORS, ids=[c[0] for c in CHAT_ERRORS])
def test_chat_errors(name, example, expected):
    assert validate_chat(example).codes == expected


def test_every_chat_code_has_a_golden_case():
    covered = {code for _, _, codes in CHAT_ERRORS for code in codes}
    assert covered == {
        "data_type", "missing_messages_list", "message_missing_key", "message_unrecognized_key", "unrecognized_role",
        "missing_content", "example_missing_assistant_message", "invalid_weight", "invalid_tool_call", "invalid_image",
    }


def test_messages_point_at_index_and_key():
    (error,) = validate_chat(chat(USER, {**ASSISTANT, "mood": "x"})).errors
    assert error.message == "messages[1] has unrecognized key 'mood'"
    (error,) = validate_chat(chat(USER, {**CALLER, "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{"}}]}, TOOL_REPLY, ASSISTANT)).errors
    assert error.message == "messages[1].tool_calls[0].function.arguments must be a string holding JSON"


@pytest.mark.parametrize(
    "example, warnings",
    [
        (chat(USER, ASSISTANT), {"missing_system_message"}),
        (chat(SYSTEM, ASSISTANT), {"missing_user_message"}),
        (chat(SYSTEM, USER, {**ASSISTANT, "weight": 0}), {"no_trained_message"}),
        (chat(SYSTEM, USER, ASSISTANT, USER), {"trailing_untrained_messages"}),
        (chat(SYSTEM, USER, {**ASSISTANT, "content": "  "}), {"blank_content"}),
        (chat(SYSTEM, USER, ASSISTANT, id=7), {"unrecognized_example_key"}),
    ],
)
def test_chat_warnings(example, warnings):
    found = validate_chat(example)
    assert found.errors == [] and found.warnings == warnings


@pytest.mark.parametrize(
    "example, expected",
    [
        ({"prompt": "p", "completion": " c"}, []),
        ({"prompt": "", "completion": " c"}, []),
        ({"prompt": "p", "completion": ""}, ["invalid_completion"]),
        ({"prompt": 1, "completion": "c"}, ["invalid_completion"]),
        ({"completion": "c"}, ["invalid_completion"]),
        ({"prompt": "p", "completion": "c", "extra": 1}, ["invalid_completion"]),
        ("text", ["data_type"]),
    ],
)
def test_completion_rules(example, expected):
    assert validate_completion(example).codes == expected


PREFERRED = [{"role": "assistant", "content": "Paris."}]
REJECTED = [{"role": "assistant", "content": "London."}]
DPO = {"input": {"messages": [SYSTEM, {"role": "user", "content": "Capital of France?"}]},
       "preferred_output": PREFERRED, "non_preferred_output": REJECTED}


@pytest.mark.parametrize(
    "change, expected",
    [
        ({}, []),
        ({"input": {**DPO["input"], "tools": [TOOL], "parallel_tool_calls": True}}, []),
        ({"input": {"messages": []}}, ["missing_messages_list"]),
        ({"input": "Capital?"}, ["invalid_preference"]),
        ({"input": {**DPO["input"], "extra": 1}}, ["invalid_preference"]),
        ({"preferred_output": PREFERRED * 2}, ["invalid_preference"]),
        ({"preferred_output": [{"role": "user", "content": "x"}]}, ["invalid_preference"]),
        ({"non_preferred_output": "London."}, ["invalid_preference"]),
        ({"non_preferred_output": PREFERRED}, ["invalid_preference"]),
        ({"preferred_output": [{"role": "assistant", "content": ""}]}, ["missing_content"]),
        ({"input": {"messages": [{"role": "robot", "content": "x"}]}}, ["unrecognized_role"]),
        ({"score": 1}, ["invalid_preference"]),
    ],
)
def test_preference_rules(change, expected):
    assert validate_preference({**DPO, **change}).codes == expected


def test_preference_warnings():
    found = validate_preference({**DPO, "input": {"messages": [{"role": "user", "content": "q"}]}})
    assert found.warnings == {"missing_system_message"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["role", "content", "weight", "name", "tool_calls", "function", "arguments", "id", "type",
                         "tool_call_id", "image_url", "url", "text", "messages", "input", "x"]),
        inner,
        max_size=4,
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["messages", "prompt", "completion", "input", "preferred_output",
                                        "non_preferred_output", "tools", "functions"]), json_values) | json_values)
def test_validation_never_raises(example):
    for fmt in ("chat", "completion", "preference"):
        found = validate_example(example, fmt)
        json.dumps([e.message for e in found.errors])  # messages are plain strings


def test_blank_content_is_rejected_when_asked():
    found = validate_chat(chat(SYSTEM, USER, {**ASSISTANT, "content": " \n"}), reject_blank=True)
    assert [(e.code, e.message) for e in found.errors] == [("missing_content", "messages[2].content is only whitespace")]
    assert validate_completion({"prompt": "p", "completion": " "}, reject_blank=True).codes == ["invalid_completion"]


def test_an_assistant_turn_that_only_calls_tools_may_have_empty_content():
    """transformers' and TRL's tool-use examples write content "" where OpenAI writes null."""
    from transforms.rules import validate_chat

    call = [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]
    example = {"messages": [{"role": "user", "content": "Weather?"},
                            {"role": "assistant", "content": "", "tool_calls": call},
                            {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
                            {"role": "assistant", "content": "It is sunny."}]}
    assert [e.code for e in validate_chat(example, reject_blank=True).errors] == []
    example["messages"][3]["content"] = ""
    assert [e.code for e in validate_chat(example).errors] == ["missing_content"]
