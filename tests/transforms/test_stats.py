import apache_beam as beam
import jsonschema
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.models import ModelSpec
from schemas.records import Item, Rejected, Rejection, Source, TokenCount
from schemas.stats import stats_schema
from schemas.recipe import SplitSpec
from transforms.stats import (
    ComputeStats,
    KeptExample,
    StatsAccumulator,
    build_stats,
    per_example_summary,
    percentile,
    training_estimate,
)

MODEL = ModelSpec("m", "o200k_base", 100)
CONTEXT = {"format": "chat", "split": {"validation_fraction": 0.1, "seed": 0}}


def tokens(total, trained=0, **by_role):
    return TokenCount(total, total, trained, tuple(sorted(by_role.items())))


def kept(split, n, warnings=(), messages=2, limit=100):
    example = KeptExample.of(split, tokens(n, n // 2, user=n - n // 2, assistant=n // 2), warnings, messages, limit)
    return lambda acc: acc.add_kept(example)


def read(file):
    return lambda acc: acc.add_read(file)


def rejected(*codes):
    return lambda acc: acc.add_rejected(codes)


def dropped(reason):
    return lambda acc: acc.add_dropped(reason)


def test_nearest_rank_percentiles():
    histogram = {value: 1 for value in range(1, 101)}
    assert [percentile(histogram, q) for q in (50, 90, 99, 100)] == [50, 90, 99, 100]
    assert percentile({7: 3}, 50) == 7
    assert percentile({}, 50) is None


def test_summary_of_nothing_is_nulls():
    assert per_example_summary({})["p95"] is None


def test_accumulators_merge_like_one():
    events = [read("a"), read("b"), kept("train", 10, ("missing_system_message",)), kept("validation", 4),
              rejected("x", "y"), dropped("duplicate_exact")]
    whole = StatsAccumulator()
    for count in events:
        count(whole)
    left, right = StatsAccumulator(), StatsAccumulator()
    for i, count in enumerate(events):
        count(left if i % 2 else right)
    assert left.merge(right) == whole


def test_build_stats_document_fits_the_schema_and_adds_up():
    acc = StatsAccumulator()
    for count in [read("a")] * 5 + [kept("train", 10), kept("train", 150, ("truncated_to_limit",)), kept("validation", 4),
                                    rejected("x"), dropped("dup")]:
        count(acc)
    doc = build_stats(acc, files=["a", "empty"], model=MODEL, context=CONTEXT, price_per_million_tokens=3.0)
    jsonschema.validate(doc, stats_schema())
    r = doc["records"]
    assert r["read"] == r["train"] + r["validation"] + r["rejected"] + sum(r["dropped"].values()) == 5
    assert doc["files"] == {"read": [{"path": "a", "rows": 5}, {"path": "empty", "rows": 0}], "failed": []}
    assert doc["tokens"]["total"] == 164 and doc["tokens"]["trained"] == 5 + 75 + 2
    assert doc["tokens"]["by_role"] == {"assistant": 82, "user": 82}
    assert doc["tokens"]["by_role_per_example"]["user"]["max"] == 75
    assert doc["warnings"] == {"truncated_to_limit": 1}
    # Two training examples: 2 * 3 < 100, so OpenAI's default is min(25, 100 // 2) = 25 epochs.
    assert doc["estimate"] == {"train_examples": 2, "n_epochs": 25, "n_epochs_from": "default",
                               "billed_tokens_per_epoch": 110, "billed_tokens": 2750,
                               "price_per_million_tokens": 3.0, "cost": 0.0083}
    assert doc["messages_per_example"]["p50"] == 2


def test_the_recipe_s_epochs_are_the_estimate_s_and_auto_is_the_platform_default():
    recipe = training_estimate(n_train=2, billed_tokens_per_epoch=10, n_epochs=7)
    assert (recipe["n_epochs"], recipe["n_epochs_from"], recipe["billed_tokens"]) == (7, "recipe", 70)
    auto = training_estimate(n_train=2, billed_tokens_per_epoch=10, n_epochs="auto")
    assert (auto["n_epochs"], auto["n_epochs_from"]) == (25, "default")


def test_compute_stats_transform(tmp_path):
    """Pass 1's unit statistics, the shard writers' kept examples and the dedup decisions
    combine into one document."""
    from types import SimpleNamespace

    from transforms.dedup import Decision, decision_block, write_block

    src = Source("f", 0)
    unit = StatsAccumulator()
    for record in (Item(src, {}), Item(src, {}), Item(src, {}), Rejected(src, [], None)):
        unit.add_read(record.source.file)
    unit.add_rejected(Rejected(src, [Rejection("a", ""), Rejection("b", "")], None).codes)
    unit.add_kept(KeptExample("train", tokens(12, 5, assistant=5, user=7), (), 2, 12))
    unit.add_kept(KeptExample("train", tokens(30, 5, assistant=5, user=25), (), 2, 30))
    # the second one was a duplicate: the writer of dropped/ takes it back
    back = StatsAccumulator().take_back(KeptExample("train", tokens(30, 5, assistant=5, user=25), (), 2, 30))
    with TestPipeline() as p:
        units = p | "Units" >> beam.Create([SimpleNamespace(stats=unit)])
        shards = p | "TakenBack" >> beam.Create([back])
        decisions = p | "Decisions" >> beam.Create([write_block(str(tmp_path / "decisions.npy"),
                                                            decision_block([Decision(0, 3, "duplicate_exact", 0, 1, "train")]))])
        stats = {"units": units, "taken_back": shards, "decisions": decisions} | ComputeStats(
            files=["f"], model=MODEL, format="chat", split=SplitSpec(**CONTEXT["split"]),
            dropped_reasons=["duplicate_exact", "filter_echo"])
        assert_that(
            stats | beam.Map(lambda d: (d["records"], d["rejections"], d["tokens"]["per_example"]["max"])),
            equal_to([({"read": 4, "train": 1, "validation": 0, "rejected": 1,
                        "dropped": {"duplicate_exact": 1, "filter_echo": 0}}, {"a": 1, "b": 1}, 12)]),
        )


def test_compute_stats_refuses_unknown_outputs():
    with pytest.raises(ValueError, match=r"does not know \['surprise'\]"):
        with TestPipeline() as p:
            {"units": p | beam.Create([]), "surprise": p | "S" >> beam.Create([1])} | ComputeStats(
                files=[], model=MODEL, format="chat")
