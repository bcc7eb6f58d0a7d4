import pytest

from schemas.models import UnknownModelError, encoding_for, lookup_model


@pytest.mark.parametrize(
    "name, encoding, limit",
    [
        ("gpt-4o-mini-2024-07-18", "o200k_base", 65_536),
        ("gpt-4o-2024-08-06", "o200k_base", 65_536),
        ("gpt-4.1-2025-04-14", "o200k_base", 65_536),
        ("gpt-3.5-turbo-0125", "cl100k_base", 16_385),
        ("gpt-3.5-turbo-1106", "cl100k_base", 16_385),
    ],
)
def test_lookup_model_table(name, encoding, limit):
    spec = lookup_model(name)
    assert (spec.encoding, spec.max_tokens_per_example) == (encoding, limit)


def test_fine_tuned_model_uses_its_base_model():
    # tiktoken's own encoding_for_model maps this to cl100k_base; the base model is o200k.
    spec = lookup_model("ft:gpt-4.1-mini-2025-04-14:acme::abc123")
    assert spec.encoding == "o200k_base"
    assert spec.name == "ft:gpt-4.1-mini-2025-04-14:acme::abc123"


def test_family_prefix_gives_encoding_even_without_a_limit():
    assert encoding_for("gpt-4o-2099-01-01") == "o200k_base"
    assert encoding_for("llama-3") is None


def test_unknown_model_lists_known_ones():
    with pytest.raises(UnknownModelError, match="known models: .*gpt-4o-mini-2024-07-18"):
        lookup_model("gpt-5-super")
