
import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.models import ModelSpec
from schemas.recipe import TokensSpec
from schemas.records import Item, Source
from tests.batches import batched, each
from transforms.encodings import load_encoding
from transforms.tokens import CountTokens, TokenCounter

EXAMPLE = {
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hello, world!", "name": "ada"},
        {"role": "assistant", "content": "Hi there.", "weight": 1},
    ]
}


@pytest.fixture(scope="module", params=["o200k_base", "cl100k_base"])
def encoding(request):
    return request.param, load_encoding(request.param)


def cookbook_count(messages, enc):
    """OpenAI cookbook's num_tokens_from_messages, written out independently with tiktoken."""
    n = 3
    for message in messages:
        n += 3
        for key, value in message.items():
            n += len(enc.encode(value))
            n += key == "name"
    return n


def counter_for(encoding):
    name, enc = encoding
    return TokenCounter(enc, name), enc


def test_chat_accounting_matches_the_cookbook_for_both_encodings(encoding):
    counter, enc = counter_for(encoding)
    plain = {"messages": [{k: v for k, v in m.items() if k != "weight"} for m in EXAMPLE["messages"]]}
    tokens = counter.chat(EXAMPLE)
    assert tokens.total == tokens.context == cookbook_count(plain["messages"], enc)
    assert not tokens.estimated


def test_pinned_counts():
    counter = TokenCounter(load_encoding("o200k_base"), "o200k_base")
    assert counter.chat(EXAMPLE).total == 28


def test_by_role_and_trained(encoding):
    counter, enc = counter_for(encoding)
    example = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "first", "weight": 0},
                            {"role": "user", "content": "again"}, {"role": "assistant", "content": "second answer"}]}
    tokens = counter.chat(example)
    by_role = dict(tokens.by_role)
    assert by_role["user"] == 2 * 3 + 2 * len(enc.encode("user")) + len(enc.encode("q")) + len(enc.encode("again"))
    assert tokens.trained == 3 + len(enc.encode("assistant")) + len(enc.encode("second answer"))
    assert sum(by_role.values()) + 3 == tokens.total


def test_completion_counts_prompt_and_completion(encoding):
    counter, enc = counter_for(encoding)
    tokens = counter.completion({"prompt": "Hello, world!", "completion": " Hi"})
    assert tokens.total == len(enc.encode("Hello, world!")) + len(enc.encode(" Hi"))
    assert tokens.trained == len(enc.encode(" Hi"))


def test_tools_follow_the_cookbook_method():
    counter = TokenCounter(load_encoding("o200k_base"), "o200k_base")
    enc = load_encoding("o200k_base")
    tool = {"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name."},
            "unit": {"type": "string", "description": "Unit", "enum": ["c", "f"]}}}}}
    expected = (7 + len(enc.encode("get_weather:Get the weather")) + 3
                + 3 + len(enc.encode("city:string:City name"))
                + 3 - 3 + 3 + len(enc.encode("c")) + 3 + len(enc.encode("f")) + len(enc.encode("unit:string:Unit"))
                + 12)
    assert counter.tool_definitions([tool["function"]]) == expected
    with_tools = counter.chat({**EXAMPLE, "tools": [tool]})
    assert with_tools.total == counter.chat(EXAMPLE).total + expected and with_tools.estimated
    cl100k = TokenCounter(load_encoding("cl100k_base"), "cl100k_base")
    assert cl100k.tool_definitions([tool["function"]]) - TokenCounter(load_encoding("cl100k_base"), "o200k_base").tool_definitions([tool["function"]]) == 3


def test_tool_calls_and_images_are_estimates():
    counter = TokenCounter(load_encoding("o200k_base"), "o200k_base")
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    tokens, estimated = counter.message(call)
    assert estimated and tokens == 3 + counter.text("assistant") + 3 + counter.text("f") + counter.text("{}")
    image = {"role": "user", "content": [{"type": "text", "text": "what?"},
                                         {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}}]}
    tokens, estimated = counter.message(image)
    assert estimated and tokens == 3 + counter.text("user") + counter.text("what?") + 85


def test_preference_counts_both_sequences():
    counter = TokenCounter(load_encoding("o200k_base"), "o200k_base")
    source = [{"role": "user", "content": "Capital of France?"}]
    good, bad = {"role": "assistant", "content": "Paris."}, {"role": "assistant", "content": "It is Lyon, I believe."}
    tokens = counter.preference({"input": {"messages": source}, "preferred_output": [good], "non_preferred_output": [bad]})
    assert tokens.context == counter.chat({"messages": source + [bad]}).total
    assert tokens.total == counter.chat({"messages": source + [good]}).total + counter.chat({"messages": source + [bad]}).total
    assert tokens.trained == counter.message(good)[0] + counter.message(bad)[0]


def test_special_token_text_is_counted_as_text():
    counter = TokenCounter(load_encoding("o200k_base"), "o200k_base")
    assert counter.completion({"prompt": "<|endoftext|>", "completion": ""}).total > 1


def test_count_tokens_transform_rejects_or_truncates_over_the_limit():
    model = ModelSpec("tiny", "o200k_base", max_tokens_per_example=30)
    short = Item(Source("f", 0), {}, example=EXAMPLE)
    long = Item(Source("f", 1), {}, example={"messages": [*EXAMPLE["messages"], {"role": "user", "content": "word " * 50}]})
    broken = Item(Source("f", 2), {}, example={"messages": "not a list"})
    with TestPipeline() as p:
        items, rejected = batched(p, [short, long, broken]) | "Count" >> CountTokens(model=model, format="chat")
        assert_that(each(items, "EachItem") | beam.Map(lambda i: (i.source.row, i.tokens.total)), equal_to([(0, 28)]), label="Items")
        assert_that(
            each(rejected, "EachRejected") | beam.Map(lambda r: (r.source.row, r.codes)),
            equal_to([(1, ("too_many_tokens",)), (2, ("internal_error",))]),
            label="Rejected",
        )
    with TestPipeline() as p:
        items, rejected = batched(p, [long]) | "Count" >> CountTokens(model=model, format="chat", spec=TokensSpec(over_limit="truncate"))
        assert_that(each(items, "EachKept") | beam.Map(lambda i: i.warnings), equal_to([("truncated_to_limit",)]), label="Kept")
        assert_that(rejected, equal_to([]), label="None")
