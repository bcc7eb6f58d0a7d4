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
    assert recipe.target.kind == "openai"


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
    assert recipe.example_format == "completion"


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


