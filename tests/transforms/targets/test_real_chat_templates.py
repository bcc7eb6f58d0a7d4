"""ftprep's rendering and tokenizing with real models' tokenizer files and chat templates
(Qwen2.5, Qwen3, Llama-3.1, Gemma-3, gpt-oss; fetched by the set-up step, tests/real_tokenizers.py) gives
the very ids ``transformers``' ``apply_chat_template(tokenize=True)`` gives; a template that
rewrites earlier turns still trains them, and is not silent about a turn it cannot find."""

from __future__ import annotations

import functools

import pytest

from schemas.records import UNTRAINED_ASSISTANT_TURNS
from tests.real_tokenizers import PINS, folder
from transforms.targets.hf_tokens import HfTokenCounter

transformers = pytest.importorskip("transformers")

TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Find an order.", "parameters": {
    "type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}}]
CONVERSATIONS = [
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], None),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"},
      {"role": "assistant", "content": "4"}], None),
    ([{"role": "user", "content": "Where is order 7?"},
      {"role": "assistant", "content": "It shipped on Monday. ünïcödé 東京\n\nTwo lines."}], TOOLS),
]


@functools.lru_cache(maxsize=None)
def reference_tokenizer(family: str):
    """transformers' tokenizer of the family, the reference; loaded once (a few seconds for
    Gemma-3's), only ever read."""
    return transformers.AutoTokenizer.from_pretrained(str(folder(family)))


@functools.lru_cache(maxsize=None)
def counter(family: str) -> HfTokenCounter:
    path = folder(family)
    template = path / "chat_template.jinja"
    return HfTokenCounter.from_texts((path / "tokenizer.json").read_text(encoding="utf-8"),
                                     (path / "tokenizer_config.json").read_text(encoding="utf-8"),
                                     template.read_text(encoding="utf-8") if template.is_file() else None)


@pytest.fixture(scope="module", params=sorted(PINS))
def family(request):
    return request.param, counter(request.param), reference_tokenizer(request.param)


@pytest.mark.parametrize("index", range(len(CONVERSATIONS)))
def test_ids_equal_transformers_apply_chat_template(family, index):
    name, ours, reference = family
    messages, tools = CONVERSATIONS[index]
    expected = reference.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=True)["input_ids"]
    assert ours.encode(messages, tools=tools).ids == list(expected), name


def test_a_template_that_rewrites_earlier_turns_trains_every_turn_of_the_one_rendering():
    """Qwen3 renders an assistant turn after the last question with a think block, one before it
    without: the first turn, as the last of a shorter conversation, is not what the whole holds.
    Its span is found in the whole rendering instead (header to end of turn, as TRL's generation
    blocks mark it). It used to count 0 trained tokens, silently, then 1 untrained turn."""
    qwen3 = counter("qwen3")
    messages, _ = CONVERSATIONS[1]
    encoded = qwen3.encode(messages)
    count = encoded.count()
    assert count.untrained_turns == 0
    reference = reference_tokenizer("qwen3")
    assert encoded.ids == list(reference.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
    trained = [reference.decode([i]) for i, t in zip(encoded.ids, encoded.trained) if t]
    assert "".join(trained) == "Hello<|im_end|>\n<think>\n\n</think>\n\n4<|im_end|>\n"
    assert counter("qwen2_5").encode(messages).count().untrained_turns == 0  # no rewriting: both turns found


def test_a_turn_not_found_anywhere_is_warned_of_on_the_item(tmp_path):
    """A template that rewrites an earlier turn's content itself (here: upper-cased): that turn
    cannot be found in the whole rendering, it counts no trained tokens, and the item says so."""
    from schemas.models import ModelSpec
    from schemas.recipe import LimitsSpec
    from schemas.records import Item, Source
    from transforms.targets.hf_tokens import HfSource
    from transforms.tokens import _CountTokensFn

    shouting = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | upper if (m.role == 'assistant' "
                "and not loop.last) else m.content }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    files = tmp_path / "shouting"
    files.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (files / name).write_bytes((folder("qwen2_5") / name).read_bytes())
    (files / "chat_template.jinja").write_text(shouting)
    fn = _CountTokensFn(ModelSpec(name="q", encoding="hf:q", max_tokens_per_example=4096),
                        HfSource(str(files), allow_download=False).check(), "chat", False, LimitsSpec())
    fn.setup()
    out = []
    fn.handle(Item(Source("f", 0), {}, example={"messages": CONVERSATIONS[1][0]}), lambda tag, item: out.append(item))
    assert out[0].warnings == (UNTRAINED_ASSISTANT_TURNS,) and out[0].tokens.untrained_turns == 1
    assert out[0].tokens.trained > 0  # the last turn still trains


@pytest.mark.parametrize("key", ["thinking", "reasoning_content"])
def test_an_assistant_s_reasoning_is_rendered_under_either_name_as_transformers_renders_it(key):
    """transformers 5 fills thinking and reasoning_content from whichever a message has; Qwen3's
    template reads reasoning_content (ftprep's recipes write thinking: it was dropped)."""
    messages = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4", key: "Add two and two."}]
    ours = counter("qwen3").encode(messages)
    reference = reference_tokenizer("qwen3")
    expected = reference.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    assert ours.ids == list(expected)
    assert "Add two and two." in reference.decode([i for i, t in zip(ours.ids, ours.trained) if t])


WEATHER = [{"type": "function", "function": {"name": "weather", "description": "Weather.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]
OPENAI_TOOL_CALL = {"messages": [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                          "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
    {"role": "assistant", "content": "It is sunny.", "weight": 1}], "tools": WEATHER}


@pytest.mark.parametrize("name", ["qwen2_5", "qwen3"])
def test_an_openai_shaped_tool_call_is_counted_as_the_trainer_renders_its_row(name):
    """OpenAI's tool-calling turn (no content, arguments a JSON string) is written for TRL with
    content "" and arguments as an object — what transformers' and TRL's tool-use guides show —
    and counted as that row renders: Qwen3's template failed on the missing content, Qwen2.5's
    encoded the arguments twice."""
    from schemas.formats import trainer_row

    row = trainer_row(OPENAI_TOOL_CALL, "chat")
    call = row["messages"][1]
    assert call["content"] == "" and call["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert "weight" not in row["messages"][3]
    reference = reference_tokenizer(name)
    expected = reference.apply_chat_template(row["messages"], tools=row["tools"], tokenize=True, return_dict=True)
    assert counter(name).count(OPENAI_TOOL_CALL, "chat").total == len(expected["input_ids"])
    assert '"arguments": {"city": "Paris"}' in reference.decode(expected["input_ids"])


def trl_templates():
    import importlib.util

    from tests.deploy.extras import missing

    if importlib.util.find_spec("trl") is None:
        missing("trl is not installed (make test installs it with --no-deps)")


@pytest.mark.parametrize("name, training", [("qwen2_5", "qwen2_5_training.jinja"), ("gemma3", "gemma3_training.jinja"),
                                            ("llama3_1", "llama3_training.jinja"), ("gptoss", "gptoss_training.jinja"),
                                            ("qwen3", None)])
def test_masks_are_trl_s_where_trl_ships_a_training_template(name, training):
    """SFTTrainer with assistant_only_loss swaps a template it recognises (byte for byte) for its
    training version and masks by its {% generation %} blocks: ftprep counts that mask. The npm
    packages' Qwen2.5 and Gemma-3 templates are TRL's originals, their Llama-3.1 one is TRL's
    Llama 3 original; gpt-oss's is TRL's original (the set-up step puts it beside the npm files);
    their Qwen3 one is another revision, which TRL does not recognise either."""
    from transforms.targets.hf_tokens import HfSource

    trl_templates()
    source = HfSource(str(folder(name)), allow_download=False).check()
    assert source.training_template_name == training
    if training is None:
        assert "the model's chat template" in source.trained_from
        return
    assert source.trained_from.startswith(f"TRL's {training}")
    reference = reference_tokenizer(name)
    ours = source.load()
    for messages, tools in CONVERSATIONS:
        expected = reference.apply_chat_template(messages, tools=tools, chat_template=source.training_template,
                                                 tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        encoded = ours.encode(messages, tools=tools)
        assert encoded.ids == list(expected["input_ids"])
        assert encoded.trained == list(expected["assistant_masks"]), name
        # The training template renders the same text as the model's own: only the mask differs.
        assert encoded.ids == list(reference.apply_chat_template(messages, tools=tools, tokenize=True,
                                                                 return_dict=True)["input_ids"])


def test_gpt_oss_counts_what_trl_tokenizes_by_default_and_harmony_on_request(tmp_path):
    """The gpt-oss target counts with the model's chat template (what TRL tokenizes), with
    reasoning under either name, TRL's gpt-oss training mask; counting: harmony renders the
    system message without the template's "Current date:" line: fewer tokens per example."""
    from schemas.recipe import Recipe
    from transforms.targets.registry import target_for

    trl_templates()
    recipe = {"input": {"paths": ["x.jsonl"], "examples": "chat"}, "output": {"path": str(tmp_path / "o")}}
    target = target_for(Recipe.model_validate({**recipe, "target": {"kind": "gpt-oss", "tokenizer": str(folder("gptoss"))}}))
    source = target.token_source().check()
    assert source.reads_rows and source.training_template_name == "gptoss_training.jinja"
    example = {"messages": [{"role": "user", "content": "2+2?"},
                            {"role": "assistant", "content": "4", "reasoning_content": "Add two and two."}]}
    row = target.to_row(example, "chat")
    count = source.load().count_row(row, "chat")
    reference = reference_tokenizer("gptoss")
    expected = reference.apply_chat_template(row["messages"], chat_template=source.training_template, tokenize=True,
                                             return_dict=True, return_assistant_tokens_mask=True, reasoning_effort="medium")
    assert (count.total, count.trained) == (len(expected["input_ids"]), sum(expected["assistant_masks"]))
    assert "Add two and two." in reference.decode([i for i, t in zip(expected["input_ids"], expected["assistant_masks"]) if t])
    pytest.importorskip("openai_harmony")
    harmony = target_for(Recipe.model_validate({**recipe, "target": {"kind": "gpt-oss", "counting": "harmony"}}))
    by_harmony = harmony.token_source().check().load().count(example, "chat")
    assert harmony.model.encoding == "o200k_harmony" and by_harmony.total < count.total
