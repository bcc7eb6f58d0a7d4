"""gpt-oss's harmony rendering: ftprep's conversation mapping against openai-harmony's own
renderer fed by hand, offline (o200k_base from the verified local sources)."""

import pytest

from transforms.targets.chat_template import ChatTemplateError
from transforms.targets.harmony_tokens import HarmonySource, harmony_messages, load_harmony_encoding

harmony = pytest.importorskip("openai_harmony")
from openai_harmony import (  # noqa: E402
    Author, Conversation, DeveloperContent, Message, RenderConversationConfig, Role, SystemContent, ToolDescription,
)

KEEP_ANALYSIS = RenderConversationConfig(auto_drop_analysis=False)
TOOLS = [{"type": "function", "function": {"name": "order_status", "description": "Look up an order.",
                                           "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def counter():
    return HarmonySource().check().load()


@pytest.fixture(scope="module")
def encoding():
    return load_harmony_encoding()


def assistant(text, channel):
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel(channel)


def test_earlier_turns_lose_their_reasoning_the_last_keeps_it(counter, encoding):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "thinking": "Greet back.", "content": "Hello!"},
                {"role": "user", "content": "Plans?"},
                {"role": "assistant", "thinking": "Basic and Pro exist.", "content": "Basic or Pro."}]
    by_hand = [Message.from_role_and_content(Role.SYSTEM, SystemContent.new()),
               Message.from_role_and_content(Role.USER, "Hi"), assistant("Hello!", "final"),
               Message.from_role_and_content(Role.USER, "Plans?"),
               assistant("Basic and Pro exist.", "analysis"), assistant("Basic or Pro.", "final")]
    expected = encoding.render_conversation_for_training(Conversation.from_messages(by_hand), KEEP_ANALYSIS)
    encoded = counter.encode(messages)
    assert encoded.ids == expected
    trained = sum(len(encoding.render(m)) for m in by_hand if m.author.role == Role.ASSISTANT)
    assert sum(encoded.trained) == trained


def test_tools_and_tool_calls_render_as_harmony_does(counter, encoding):
    messages = [{"role": "system", "content": "You are Acme's support assistant."},
                {"role": "user", "content": "Where is A-1?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "order_status", "arguments": '{"id": "A-1"}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
                {"role": "assistant", "content": "It shipped."}]
    developer = (DeveloperContent.new().with_instructions("You are Acme's support assistant.")
                 .with_function_tools([ToolDescription.new("order_status", "Look up an order.",
                                                           TOOLS[0]["function"]["parameters"])]))
    call = (Message.from_role_and_content(Role.ASSISTANT, '{"id": "A-1"}').with_channel("commentary")
            .with_recipient("functions.order_status").with_content_type("<|constrain|>json"))
    answer = (Message.from_author_and_content(Author.new(Role.TOOL, "functions.order_status"), '{"status": "shipped"}')
              .with_channel("commentary").with_recipient("assistant"))
    by_hand = [Message.from_role_and_content(Role.SYSTEM, SystemContent.new()),
               Message.from_role_and_content(Role.DEVELOPER, developer),
               Message.from_role_and_content(Role.USER, "Where is A-1?"), call, answer, assistant("It shipped.", "final")]
    expected = encoding.render_conversation_for_training(Conversation.from_messages(by_hand), KEEP_ANALYSIS)
    encoded = counter.encode(messages, tools=TOOLS)
    assert encoded.ids == expected
    # The call and the answer are trained, the tool's output is not.
    text = [encoding.decode_utf8([i]) for i, t in zip(encoded.ids, encoded.trained) if t]
    assert "".join(text).count("<|start|>") == 2 and "shipped\"}" not in "".join(text)


def test_what_gpt_oss_cannot_take_is_refused_with_a_reason(counter):
    with pytest.raises(ChatTemplateError, match="text only"):
        counter.encode([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                        {"role": "assistant", "content": "A cat."}])
    with pytest.raises(ChatTemplateError, match="no role 'narrator'"):
        harmony_messages([{"role": "narrator", "content": "Once"}])


def test_completion_and_preference_counts(counter):
    completion = counter.completion({"prompt": "2+2?", "completion": "4"})
    assert completion.trained < completion.total and dict(completion.by_role)["completion"] == completion.trained
    pair = counter.preference({"input": {"messages": [{"role": "user", "content": "2+2?"}]},
                               "preferred_output": [{"role": "assistant", "content": "4"}],
                               "non_preferred_output": [{"role": "assistant", "content": "Five, I think."}]})
    assert pair.context < pair.total and pair.context == counter.chat(
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "Five, I think."}]}).total
