import pytest
from pydantic import ValidationError

from schemas.recipe import Recipe

CHAT = {
    "input": {"paths": ["data/*.parquet"]},
    "template": {"messages": [{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}]},
    "model": "gpt-4o-mini-2024-07-18",
    "output": {"path": "out"},
}


def with_(base, **changes):
    doc = {**base}
    for key, value in changes.items():
        doc[key] = value
    return doc


def test_minimal_chat_recipe_gets_defaults():
    recipe = Recipe.model_validate(CHAT)
    assert recipe.split.validation_fraction == 0.1
    assert recipe.clean.steps == ["strip_control", "nfc", "collapse_whitespace", "trim"]
    assert recipe.model_spec().max_tokens_per_example == 65_536


def test_single_path_string_becomes_a_list():
    recipe = Recipe.model_validate(with_(CHAT, input={"paths": "a.csv"}))
    assert recipe.input.paths == ["a.csv"]


def test_unknown_key_is_rejected():
    with pytest.raises(ValidationError, match="valdation_fraction"):
        Recipe.model_validate(with_(CHAT, split={"valdation_fraction": 0.2}))


def test_chat_needs_messages_or_messages_column_not_both():
    with pytest.raises(ValidationError, match="exactly one of messages or messages_column"):
        Recipe.model_validate(with_(CHAT, template={"format": "chat"}))
    with pytest.raises(ValidationError, match="exactly one"):
        Recipe.model_validate(with_(CHAT, template={**CHAT["template"], "messages_column": "conv"}))


def test_completion_needs_prompt_and_completion():
    with pytest.raises(ValidationError, match="needs both prompt and completion"):
        Recipe.model_validate(with_(CHAT, template={"format": "completion", "prompt": "{{ q }}"}))
    recipe = Recipe.model_validate(
        with_(CHAT, model="babbage-002", template={"format": "completion", "prompt": "{{ q }}", "completion": "{{ a }}"})
    )
    assert recipe.model_spec().encoding == "cl100k_base"


def test_unknown_model_fails_validation():
    with pytest.raises(ValidationError, match="unknown model 'gpt-5-super'"):
        Recipe.model_validate(with_(CHAT, model="gpt-5-super"))


def test_custom_model_for_other_platforms():
    recipe = Recipe.model_validate(
        with_(CHAT, model={"name": "my-llama", "encoding": "cl100k_base", "max_tokens_per_example": 4096})
    )
    assert recipe.model_spec().max_tokens_per_example == 4096
    with pytest.raises(ValidationError, match="unknown encoding"):
        Recipe.model_validate(with_(CHAT, model={"name": "x", "encoding": "nope", "max_tokens_per_example": 1}))
    with pytest.raises(ValidationError, match="unknown model 'my-llama'"):
        Recipe.model_validate(with_(CHAT, model={"name": "my-llama", "encoding": "cl100k_base"}))


def test_known_model_with_a_lower_limit():
    recipe = Recipe.model_validate(with_(CHAT, model={"name": "gpt-4o-mini", "max_tokens_per_example": 8000}))
    assert (recipe.model_spec().encoding, recipe.model_spec().max_tokens_per_example) == ("o200k_base", 8000)


@pytest.mark.parametrize(
    "finetune",
    [{"n_epochs": 0}, {"n_epochs": 51}, {"batch_size": 0}, {"batch_size": 257}, {"learning_rate_multiplier": 0},
     {"method": "dpo", "beta": 0}, {"method": "dpo", "beta": 2.5}, {"suffix": "x" * 65}, {"method": "ppo"},
     {"price_per_million_tokens": -1}],
)
def test_platform_bounds_on_hyperparameters(finetune):
    with pytest.raises(ValidationError):
        Recipe.model_validate(with_(CHAT, finetune=finetune))


def test_hyperparameters_within_bounds():
    recipe = Recipe.model_validate(with_(CHAT, finetune={"n_epochs": 50, "batch_size": 256, "learning_rate_multiplier": 0.1,
                                                         "suffix": "faq-bot", "seed": 7}))
    assert recipe.finetune.n_epochs == 50


def test_beta_and_dpo_need_preference_examples():
    with pytest.raises(ValidationError, match="beta only applies to method dpo"):
        Recipe.model_validate(with_(CHAT, finetune={"beta": 0.5}))
    with pytest.raises(ValidationError, match="dpo needs preference examples"):
        Recipe.model_validate(with_(CHAT, finetune={"method": "dpo"}))
    preference = {"format": "preference", "messages": [{"role": "user", "content": "{{ q }}"}],
                  "preferred": "{{ good }}", "non_preferred": "{{ bad }}"}
    assert Recipe.model_validate(with_(CHAT, template=preference, finetune={"beta": 0.5})).finetune.beta == 0.5


def test_template_or_examples():
    with pytest.raises(ValidationError, match="give a template, or input.examples"):
        Recipe.model_validate({**{k: v for k, v in CHAT.items() if k != "template"}})
    examples = Recipe.model_validate({**{k: v for k, v in CHAT.items() if k != "template"},
                                      "input": {"paths": ["a.jsonl"], "examples": "auto"}})
    assert examples.example_format is None


def test_message_template_rules():
    bad = {"messages": [{"role": "user", "content": "q"}, {"role": "user", "tool_calls": "{{ c }}"}]}
    with pytest.raises(ValidationError, match="only assistant messages have tool_calls"):
        Recipe.model_validate(with_(CHAT, template=bad))
    with pytest.raises(ValidationError, match="needs content"):
        Recipe.model_validate(with_(CHAT, template={"messages": [{"role": "assistant"}]}))


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2])
def test_validation_fraction_range(fraction):
    with pytest.raises(ValidationError):
        Recipe.model_validate(with_(CHAT, split={"validation_fraction": fraction}))


def test_the_target_defaults_to_openai_and_needs_a_model_there():
    assert Recipe.model_validate(CHAT).target.kind == "openai"
    no_model = {k: v for k, v in CHAT.items() if k != "model"}
    with pytest.raises(ValidationError, match="give the model to fine-tune"):
        Recipe.model_validate(no_model)


def test_open_weights_targets_take_their_limit_and_tokenizer_from_the_target():
    no_model = {k: v for k, v in CHAT.items() if k != "model"}
    hf = Recipe.model_validate({**no_model, "target": {"kind": "hf", "tokenizer": "Qwen/Qwen2.5-0.5B", "max_length": 4096}})
    assert (hf.model_spec().name, hf.model_spec().max_tokens_per_example) == ("Qwen/Qwen2.5-0.5B", 4096)
    oss = Recipe.model_validate({**no_model, "model": "gpt-oss-120b", "target": "gpt-oss"})
    assert (oss.model_spec().name, oss.model_spec().encoding, oss.model_spec().max_tokens_per_example) == (
        "gpt-oss-120b", "o200k_harmony", 131_072)
    with pytest.raises(ValidationError, match="max_length"):
        Recipe.model_validate({**no_model, "target": {"kind": "hf", "tokenizer": "x/y"}})
    with pytest.raises(ValidationError, match="give model as a name only"):
        Recipe.model_validate({**no_model, "target": "gpt-oss",
                               "model": {"name": "m", "encoding": "o200k_base", "max_tokens_per_example": 9}})
    with pytest.raises(ValidationError, match="sha256"):
        Recipe.model_validate({**no_model, "target": {"kind": "hf", "tokenizer": "x/y", "max_length": 8,
                                                      "sha256": {"tokenizer.json": "not-a-digest"}}})


def test_parquet_output_and_thinking_are_for_the_open_weights_targets():
    with pytest.raises(ValidationError, match="OpenAI takes JSONL"):
        Recipe.model_validate(with_(CHAT, output={"path": "out", "format": "parquet"}))
    thinking = {"messages": [{"role": "user", "content": "{{ q }}"},
                             {"role": "assistant", "content": "{{ a }}", "thinking": "{{ why }}"}]}
    with pytest.raises(ValidationError, match="thinking has no place in OpenAI's format"):
        Recipe.model_validate(with_(CHAT, template=thinking))
    recipe = Recipe.model_validate(with_(CHAT, template=thinking, target="gpt-oss", output={"path": "o", "format": "parquet"}))
    assert recipe.output.format == "parquet"
    with pytest.raises(ValidationError, match="only assistant messages have thinking"):
        Recipe.model_validate(with_(CHAT, target="gpt-oss", template={
            "messages": [{"role": "user", "content": "{{ q }}", "thinking": "x"}]}))
