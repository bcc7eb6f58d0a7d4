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


@pytest.mark.parametrize(
    "alias, snapshot",
    [("gpt-4o", "gpt-4o-2024-08-06"), ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ("gpt-4.1", "gpt-4.1-2025-04-14"),
     ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14"), ("gpt-4.1-nano", "gpt-4.1-nano-2025-04-14"),
     ("gpt-3.5-turbo", "gpt-3.5-turbo-0125"), ("ft:gpt-4o-mini:acme:faq:xyz", "gpt-4o-mini-2024-07-18")],
)
def test_aliases_resolve_to_snapshots(alias, snapshot):
    assert lookup_model(alias).max_tokens_per_example == lookup_model(snapshot).max_tokens_per_example
    assert lookup_model(alias).encoding == lookup_model(snapshot).encoding


def test_legacy_completion_models_and_old_snapshots():
    assert lookup_model("davinci-002").encoding == lookup_model("babbage-002").encoding == "cl100k_base"
    assert lookup_model("gpt-3.5-turbo-0613").max_tokens_per_example == 4_096


def test_overrides_and_unknown_models():
    assert lookup_model("gpt-4o-mini", max_tokens_per_example=32_000).max_tokens_per_example == 32_000
    assert lookup_model("gpt-4o-mini", encoding="cl100k_base").encoding == "cl100k_base"
    assert lookup_model("llama-3-8b", encoding="cl100k_base", max_tokens_per_example=8192).encoding == "cl100k_base"
    with pytest.raises(UnknownModelError):
        lookup_model("llama-3-8b", encoding="cl100k_base")
    with pytest.raises(UnknownModelError, match="unknown encoding"):
        lookup_model("gpt-4o-mini", encoding="p50k_edit")


def test_aliases_pin_to_their_snapshot():
    from schemas.models import snapshot_of

    assert snapshot_of("gpt-4o-mini") == "gpt-4o-mini-2024-07-18"
    assert snapshot_of("gpt-4.1-2025-04-14") == "gpt-4.1-2025-04-14"
    assert snapshot_of("ft:gpt-4o-mini-2024-07-18:acme::abc") == "ft:gpt-4o-mini-2024-07-18:acme::abc"


def test_the_fine_tuning_shutdown_is_announced_from_90_days_before_with_its_source():
    from schemas.models import retirement_notice

    assert retirement_notice("2026-09-01") is None
    soon = retirement_notice("2026-11-27")
    assert (soon["status"], soon["days_left"], soon["date"]) == ("retiring", 40, "2027-01-06")
    assert "deprecations" in soon["source"]
    assert retirement_notice("2027-02-01")["status"] == "retired"
