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
    assert recipe.clean.steps == ["nfc", "strip_control", "collapse_spaces", "trim"]
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


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2])
def test_validation_fraction_range(fraction):
    with pytest.raises(ValidationError):
        Recipe.model_validate(with_(CHAT, split={"validation_fraction": fraction}))
