"""Each hosted provider's conversion: rows that hold to the provider's documented schema, every
message, role and trained flag kept where the format can express it, the provider's rule as the
code of what it cannot."""

import json
from pathlib import Path

import jsonschema
import pytest

from transforms.targets.base import TargetRuleError
from transforms.targets.hosted import HostedTarget
from transforms.targets.registry import TARGETS

HOSTED = {kind: target.provider for kind, target in TARGETS.items() if issubclass(target, HostedTarget)}


def target_row(kind, example, fmt):
    return TARGETS[kind].convert(example, fmt)


SCHEMAS = Path(__file__).resolve().parents[3] / "schemas" / "targets"
SYSTEM = {"role": "system", "content": "You are Acme's support assistant."}
MULTI_TURN = {"messages": [SYSTEM, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                           {"role": "user", "content": "Plans?"}, {"role": "assistant", "content": "Basic or Pro."}]}
TOOL_CALL = {"messages": [{"role": "user", "content": "Where is A-1?"},
                          {"role": "assistant", "content": None, "tool_calls": [
                              {"id": "c1", "type": "function", "function": {"name": "order", "arguments": "{}"}}]},
                          {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
                          {"role": "assistant", "content": "It shipped."}]}
WEIGHTED = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hm.", "weight": 0},
                         {"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello!", "weight": 1}]}
IMAGE = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                   {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]},
                      {"role": "assistant", "content": "A cat."}]}
PAIR = {"input": {"messages": [SYSTEM, {"role": "user", "content": "2+2?"}]},
        "preferred_output": [{"role": "assistant", "content": "4"}],
        "non_preferred_output": [{"role": "assistant", "content": "5"}]}
COMPLETION = {"prompt": "2+2?", "completion": "4"}


def schema(kind):
    return json.loads((SCHEMAS / HOSTED[kind].schema_file).read_text())


def conversation(row):
    """(role, text, trained) of every turn of a provider's row, in ftprep's role names."""
    if "contents" in row:  # Gemini
        system = [("system", "".join(p["text"] for p in row.get("systemInstruction", {}).get("parts", ())), True)]
        return system[: 1 if "systemInstruction" in row else 0] + [
            ("assistant" if c["role"] == "model" else "user", "".join(p["text"] for p in c["parts"]), True)
            for c in row["contents"]]
    if "schemaVersion" in row:  # Nova
        system = [("system", "".join(b["text"] for b in row["system"]), True)] if "system" in row else []
        return system + [(m["role"], "".join(b["text"] for b in m["content"]), True) for m in row["messages"]]
    return [(m["role"], m["content"], m.get("weight", 1) == 1) for m in row["messages"]]


def source_turns(example):
    return [(m["role"], m["content"], m.get("weight", 1) == 1) for m in example["messages"]]


@pytest.mark.parametrize("kind", sorted(HOSTED))
def test_every_message_role_and_trained_flag_survives_where_the_format_has_them(kind):
    row = target_row(kind, MULTI_TURN, "chat")
    jsonschema.validate(row, schema(kind))
    assert conversation(row) == source_turns(MULTI_TURN)


@pytest.mark.parametrize("kind, code", [
    ("together", "together_tools"), ("fireworks", "fireworks_tools"), ("bedrock-nova", "bedrock_nova_tools")])
def test_tool_calls_are_rejected_with_the_providers_code(kind, code):
    with pytest.raises(TargetRuleError) as error:
        target_row(kind, TOOL_CALL, "chat")
    assert error.value.code == code


def test_gemini_takes_tool_calls_as_function_call_and_response_parts():
    tools = [{"type": "function", "function": {"name": "order", "description": "Find an order.",
                                               "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}}]
    row = target_row("vertex-gemini", {**TOOL_CALL, "tools": tools}, "chat")
    jsonschema.validate(row, schema("vertex-gemini"))
    assert [c["role"] for c in row["contents"]] == ["user", "model", "user", "model"]
    assert row["contents"][1]["parts"] == [{"functionCall": {"name": "order", "args": {}}}]
    assert row["contents"][2]["parts"] == [{"functionResponse": {"name": "order", "response": {"content": "shipped"}}}]
    assert row["tools"][0]["functionDeclarations"][0]["parameters"]["properties"]["id"]["type"] == "STRING"
    bad = {"messages": [TOOL_CALL["messages"][0], {**TOOL_CALL["messages"][1], "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "order", "arguments": "[1, 2]"}}]}]}
    with pytest.raises(TargetRuleError) as error:
        target_row("vertex-gemini", bad, "chat")
    assert error.value.code == "vertex_gemini_function_args"


def test_azure_keeps_openais_rows_whole_tools_and_weights_included():
    for example in (TOOL_CALL, WEIGHTED, MULTI_TURN):
        assert target_row("azure-openai", example, "chat") == example
        jsonschema.validate(example, schema("azure-openai"))


def test_weights_survive_on_fireworks_and_are_refused_where_there_is_no_weight():
    row = target_row("fireworks", WEIGHTED, "chat")
    jsonschema.validate(row, schema("fireworks"))
    assert conversation(row) == source_turns(WEIGHTED)
    for kind, code in (("together", "together_weight"), ("vertex-gemini", "vertex_gemini_weight"),
                       ("bedrock-nova", "bedrock_nova_weight")):
        with pytest.raises(TargetRuleError) as error:
            target_row(kind, WEIGHTED, "chat")
        assert error.value.code == code


@pytest.mark.parametrize("kind, code", [
    ("together", "together_content"), ("fireworks", "fireworks_content"), ("vertex-gemini", "vertex_gemini_file_uri"),
    ("bedrock-nova", "bedrock_nova_image_uri")])
def test_an_image_the_provider_cannot_reach_is_rejected(kind, code):
    inline = {"messages": [{**IMAGE["messages"][0], "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}, IMAGE["messages"][1]]}
    with pytest.raises(TargetRuleError) as error:
        target_row(kind, inline, "chat")
    assert error.value.code == code


def test_images_in_the_providers_own_store_are_converted():
    gs = {"messages": [{**IMAGE["messages"][0], "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "gs://b/cat.png"}}]},
        IMAGE["messages"][1]]}
    row = target_row("vertex-gemini", gs, "chat")
    jsonschema.validate(row, schema("vertex-gemini"))
    assert row["contents"][0]["parts"][1] == {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/cat.png"}}
    s3 = {"messages": [{**IMAGE["messages"][0], "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "s3://b/cat.jpg"}}]},
        IMAGE["messages"][1]]}
    row = target_row("bedrock-nova", s3, "chat")
    jsonschema.validate(row, schema("bedrock-nova"))
    assert row["messages"][0]["content"][1]["image"]["format"] == "jpeg"


def test_the_providers_order_rules():
    starts_with_assistant = {"messages": [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "?"},
                                          {"role": "assistant", "content": "!"}]}
    for kind, code in (("together", "together_order"), ("bedrock-nova", "bedrock_nova_first_turn"),
                       ("vertex-gemini", "vertex_gemini_first_turn")):
        with pytest.raises(TargetRuleError) as error:
            target_row(kind, starts_with_assistant, "chat")
        assert error.value.code == code
    late_system = {"messages": [{"role": "user", "content": "Hi"}, SYSTEM, {"role": "assistant", "content": "!"}]}
    with pytest.raises(TargetRuleError) as error:
        target_row("fireworks", late_system, "chat")
    assert error.value.code == "fireworks_system_first"
    ends_with_user = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "!"},
                                   {"role": "user", "content": "Bye"}]}
    with pytest.raises(TargetRuleError) as error:
        target_row("bedrock-nova", ends_with_user, "chat")
    assert error.value.code == "bedrock_nova_last_turn"


def test_novas_reserved_keywords():
    with pytest.raises(TargetRuleError) as error:
        target_row("bedrock-nova", {"messages": [{"role": "user", "content": "User: hi"},
                                                 {"role": "assistant", "content": "Hello"}]}, "chat")
    assert error.value.code == "bedrock_nova_reserved_keyword"


def test_an_example_without_a_user_turn_is_not_a_gemini_row():
    """Together and Bedrock reject a conversation of one model turn; Gemini's page shows contents
    opening with the user's request (it used to write contents with a lone model turn)."""
    for example in ({"messages": [SYSTEM, {"role": "assistant", "content": "Hello!"}]},
                    {"messages": [{"role": "assistant", "content": "Hello!"}]}):
        with pytest.raises(TargetRuleError) as error:
            target_row("vertex-gemini", example, "chat")
        assert error.value.code == "vertex_gemini_first_turn"


# Together's preference-tuning page, its own example: the input opens with the assistant's greeting.
TOGETHER_PAGE_PAIR = {
    "input": {"messages": [{"role": "assistant", "content": "Hello, how can I assist you today?"},
                           {"role": "user", "content": "Can you tell me about the rise of the Roman Empire?"}]},
    "preferred_output": [{"role": "assistant", "content": "The Roman Empire rose from a small city-state."}],
    "non_preferred_output": [{"role": "assistant", "content": "The Roman Empire rose due to military strength."}]}


def test_together_takes_the_dpo_example_of_its_own_page():
    row = target_row("together", TOGETHER_PAGE_PAIR, "preference")
    jsonschema.validate(row, schema("together"))
    assert row["input"]["messages"][0]["role"] == "assistant"
    # Still alternating, and ending with the user whom both outputs answer.
    ends_with_assistant = {**TOGETHER_PAGE_PAIR, "input": {"messages": TOGETHER_PAGE_PAIR["input"]["messages"][:1]}}
    with pytest.raises(TargetRuleError) as error:
        target_row("together", ends_with_assistant, "preference")
    assert error.value.code == "together_order"


def test_fireworks_takes_dpo_pairs_as_its_page_shows_them():
    row = target_row("fireworks", PAIR, "preference")
    jsonschema.validate(row, schema("fireworks"))
    assert row["preferred_output"] == [{"role": "assistant", "content": "4"}]
    weighted = {**PAIR, "input": {"messages": [{"role": "user", "content": "2+2?", "weight": 0}]}}
    with pytest.raises(TargetRuleError) as error:
        target_row("fireworks", weighted, "preference")
    assert error.value.code == "fireworks_weight"
    job = TARGETS["fireworks"].job_body(model="qwen3-8b", train_files=["train/a.jsonl"], validation_files=["validation/a.jsonl"],
                                        n_epochs=2, suffix="m", example_format="preference")
    assert job["command"] == "firectl create dpoj" and job["dataset"] == "<dataset id of train/a.jsonl>"


def test_nova_dpo_is_a_sagemaker_job_not_a_bedrock_fine_tuning_one():
    """Nova's customization page: DPO recipes run on SageMaker AI, not on Bedrock; the job body
    used to ask Bedrock for customizationType FINE_TUNING on DPO records."""
    job = TARGETS["bedrock-nova"].job_body(model="amazon.nova-lite-v1:0:300k", train_files=["train/a.jsonl"],
                                           validation_files=[], n_epochs=2, suffix=None, example_format="preference")
    assert "customizationType" not in job and job["service"].startswith("SageMaker AI training job")
    chat = TARGETS["bedrock-nova"].job_body(model="amazon.nova-lite-v1:0:300k", train_files=["train/a.jsonl"],
                                            validation_files=[], n_epochs=2, suffix=None, example_format="chat")
    assert chat["customizationType"] == "FINE_TUNING"


@pytest.mark.parametrize("kind", ["together", "fireworks", "bedrock-nova"])
def test_preference_pairs_in_the_providers_shape(kind):
    row = target_row(kind, PAIR, "preference")
    jsonschema.validate(row, schema(kind))
    if kind == "bedrock-nova":
        assert [c["preferenceLabel"] for c in row["messages"][-1]["candidates"]] == ["preferred", "non-preferred"]
        assert row["system"] == [{"text": SYSTEM["content"]}]


@pytest.mark.parametrize("kind", ["together", "vertex-gemini", "bedrock-nova"])
def test_completions_in_the_providers_shape(kind):
    row = target_row(kind, COMPLETION, "completion")
    jsonschema.validate(row, schema(kind))


def test_every_provider_names_its_pages_and_what_it_does_not_publish():
    for kind, hosted in HOSTED.items():
        assert all(url.startswith("https://") for url in hosted.sources.values()), kind
        assert all(model.source.startswith("https://") for model in hosted.models.values()), kind
        assert hosted.counting.method in ("tiktoken", "estimate") and hosted.counting.source, kind
        assert (SCHEMAS / hosted.schema_file).is_file(), kind
