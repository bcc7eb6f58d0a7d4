"""Chat templates rendered and counted as ``transformers``' ``apply_chat_template`` does, on a BPE
tokenizer trained here and templates written here (no hub, no network)."""

import json

import pytest

from transforms.targets.chat_template import ChatTemplate, ChatTemplateError, ChatTemplateRenderer, trained_mask
from transforms.targets.hf_tokens import HfTokenCounter

transformers = pytest.importorskip("transformers")

SPECIALS = ["<|im_start|>", "<|im_end|>", "<s>", "</s>"]
# ChatML with the assistant turn marked for the loss, a system default, tools as JSON, and a
# refusal of unknown roles: the constructs real templates use.
CHATML = (
    "{{ bos_token }}"
    "{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}"
    "{% if m.role not in ['system', 'user', 'assistant'] %}{{ raise_exception('unknown role ' + m.role) }}{% endif %}"
    "<|im_start|>{{ m.role }}\n"
    "{% if m.role == 'assistant' %}{% generation %}{{ m.content }}<|im_end|>{% endgeneration %}\n"
    "{% else %}{{ m.content }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHATML_UNMARKED = CHATML.replace("{% generation %}", "").replace("{% endgeneration %}", "")
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris, on the Seine."}],
    [{"role": "system", "content": "You answer briefly. Ünïcödé — ok."},
     {"role": "user", "content": "Two plus two?"}, {"role": "assistant", "content": "Four."},
     {"role": "user", "content": "And times three?"}, {"role": "assistant", "content": "Twelve.\n\nDone."}],
]
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Find an order.",
                                           "parameters": {"type": "object", "properties": {"order": {"type": "integer"}}}}}]


def train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    corpus = [m["content"] for conversation in CONVERSATIONS for m in conversation] * 20 + [
        "The quick brown fox jumps over the lazy dog. " * 5, json.dumps(TOOLS), "user assistant system"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus, trainer)
    return tokenizer


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """Two tokenizer folders as the hub ships them: the template with generation marks and without."""
    tokenizer = train_tokenizer()
    dirs = {}
    for name, template in (("marked", CHATML), ("unmarked", CHATML_UNMARKED)):
        folder = tmp_path_factory.mktemp(name)
        tokenizer.save(str(folder / "tokenizer.json"))
        (folder / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
            "chat_template": template}))
        dirs[name] = folder
    return dirs


def ours(folder):
    return HfTokenCounter.from_texts((folder / "tokenizer.json").read_text(), (folder / "tokenizer_config.json").read_text())


def reference(folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return transformers.AutoTokenizer.from_pretrained(str(folder))


@pytest.mark.parametrize("index", range(len(CONVERSATIONS)))
@pytest.mark.parametrize("tools", [None, TOOLS])
def test_ids_and_trained_mask_equal_transformers(model_dirs, monkeypatch, index, tools):
    messages = CONVERSATIONS[index]
    expected = reference(model_dirs["marked"], monkeypatch).apply_chat_template(
        messages, tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    encoded = ours(model_dirs["marked"]).encode(messages, tools=tools)
    assert encoded.ids == list(expected["input_ids"])
    assert encoded.trained == list(expected["assistant_masks"])
    assert 0 < sum(encoded.trained) < len(encoded.ids)


def test_rendered_text_equals_transformers(model_dirs, monkeypatch):
    hf = reference(model_dirs["unmarked"], monkeypatch)
    renderer = ChatTemplateRenderer(ChatTemplate.from_tokenizer_config(json.loads(
        (model_dirs["unmarked"] / "tokenizer_config.json").read_text())))
    for messages in CONVERSATIONS:
        assert renderer.render(messages, tools=TOOLS).text == hf.apply_chat_template(messages, tools=TOOLS, tokenize=False)


def test_without_generation_marks_each_assistant_turn_is_trained(model_dirs):
    """The fallback trains what each assistant turn adds after the generation prompt (the
    assistant header): the answer, its end token and what the turn ends with."""
    messages = CONVERSATIONS[1]
    unmarked = ChatTemplateRenderer(ChatTemplate(CHATML_UNMARKED, {"bos_token": "<s>"})).render(messages)
    assert not unmarked.marked
    assert [unmarked.text[start:end] for start, end in unmarked.trained] == ["Four.<|im_end|>\n", "Twelve.\n\nDone.<|im_end|>\n"]


def test_template_errors_are_the_example_s_not_the_run_s():
    renderer = ChatTemplateRenderer(ChatTemplate(CHATML, {"bos_token": "<s>"}))
    with pytest.raises(ChatTemplateError, match="unknown role tool"):
        renderer.render([{"role": "tool", "content": "x"}])
    with pytest.raises(ChatTemplateError, match="does not parse"):
        ChatTemplateRenderer(ChatTemplate("{% for m in messages %}"))
    with pytest.raises(ChatTemplateError, match="no chat template"):
        ChatTemplate.from_tokenizer_config({"eos_token": "</s>"})


def test_hostile_templates_stay_in_the_sandbox():
    from schemas.recipe import LimitsSpec

    spin = ChatTemplateRenderer(ChatTemplate("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
                                limits=LimitsSpec(max_render_seconds=0.2))
    with pytest.raises(ChatTemplateError, match="CPU time"):
        spin.render([])
    escape = ChatTemplateRenderer(ChatTemplate("{{ messages.__class__.__mro__ }}"))
    with pytest.raises(ChatTemplateError, match="SecurityError|unsafe|access"):
        escape.render([])


def test_trained_mask_counts_tokens_cut_by_a_span_edge():
    assert trained_mask([(0, 2), (2, 5), (5, 7), (7, 9)], [(3, 6)]) == [0, 1, 1, 0]
    assert trained_mask([(0, 1), (1, 2)], []) == [0, 0]


def test_files_resolved_offline_count_like_the_folder_itself(model_dirs, monkeypatch):
    from transforms.targets.hf_files import resolve_tokenizer_files

    files = resolve_tokenizer_files(str(model_dirs["marked"]), allow_download=False)
    counter = HfTokenCounter.from_texts(files.tokenizer_json, files.tokenizer_config, files.chat_template)
    expected = reference(model_dirs["marked"], monkeypatch).apply_chat_template(CONVERSATIONS[0], tokenize=True, return_dict=True)
    assert counter.chat({"messages": CONVERSATIONS[0]}).total == len(expected["input_ids"])


def test_a_model_s_template_has_one_cpu_budget_per_example_and_bounded_filters():
    """Without generation blocks an example renders 2 x turns + 1 times; the budget is the
    example's, not each render's (a 20-turn row took 20 budgets). tojson's indent is a size."""
    from schemas.recipe import LimitsSpec

    # Each render spins for ~0.06 s: under the 0.2 s budget once, far over it 41 times.
    slow = ChatTemplateRenderer(ChatTemplate(
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
        "{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}"),
        limits=LimitsSpec(max_render_seconds=0.2))
    assert slow.render([{"role": "user", "content": "hi"}]).text == "user: hi\n"
    turns = [{"role": role, "content": "x"} for _ in range(20) for role in ("user", "assistant")]
    with pytest.raises(ChatTemplateError, match="CPU time"):
        slow.render(turns)
    indent = ChatTemplateRenderer(ChatTemplate("{{ messages | tojson(indent=50000000) }}"))
    with pytest.raises(ChatTemplateError, match="tojson filter would build"):
        indent.render([{"role": "user", "content": "hi"}])
    assert ChatTemplateRenderer(ChatTemplate("{{ messages | tojson(indent=2) }}")).render(
        [{"role": "user", "content": "hi"}]).text == '[\n  {\n    "role": "user",\n    "content": "hi"\n  }\n]'
    address = ChatTemplateRenderer(ChatTemplate("{{ raise_exception }}"))
    with pytest.raises(ChatTemplateError, match="memory address"):
        address.render([])
