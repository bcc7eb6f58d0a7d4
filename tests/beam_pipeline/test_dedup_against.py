"""dedup.against: a run drops exactly the examples an earlier run holds (exact and near),
reading only the earlier run's dedup_index/ (its data deleted here), and names them."""

import json
import random

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.stats import stats_schema
from tests.beam_pipeline.helpers import IN_MEMORY, assert_conserved, read_output, run, write_recipe

TEMPLATE = {"messages": [{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}]}


def text(rng, words):
    return " ".join(f"w{rng.randrange(100_000)}" for _ in range(words))


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    root = tmp_path_factory.mktemp("against")
    rng = random.Random(28)
    day1 = [{"q": f"question {i}", "a": text(rng, 80)} for i in range(30)]
    day2 = [dict(day1[i]) for i in (3, 17)]  # exact copies of earlier examples
    for i in (8, 25):  # one word changed in 80: near copies
        words = day1[i]["a"].split()
        words[40] = "changed"
        day2.append({"q": day1[i]["q"], "a": " ".join(words)})
    day2 += [{"q": f"new {i}", "a": text(rng, 80)} for i in range(6)]
    day2.append(dict(day2[-1]))  # a duplicate within the day: dropped as one of this run's
    pq.write_table(pa.Table.from_pylist(day1), root / "day1.parquet")
    pq.write_table(pa.Table.from_pylist(day2), root / "day2.parquet")
    return root


def recipe(root, name, day, **dedup):
    return write_recipe(root, {
        "input": {"paths": [str(root / f"{day}.parquet")]}, "template": TEMPLATE, "model": "gpt-4o-mini-2024-07-18",
        "dedup": {"exact": True, "near": {"threshold": 0.8}, **dedup},
        "output": {"path": str(root / name), "provenance": True},
    }, name=f"{name}.yaml")


def test_a_run_drops_what_an_earlier_run_holds_reading_only_its_index(days, capsys):
    assert run(recipe(days, "first", "day1"), IN_MEMORY) == 0
    index = days / "first" / "dedup_index"
    meta = json.loads((index / "index.json").read_text())
    assert meta["examples"] == 30 and meta["near"]["signatures"] == 30
    for path in (days / "first").iterdir():  # only the index is left of the earlier run
        if path.name != "dedup_index":
            path.unlink() if path.is_file() else __import__("shutil").rmtree(path)

    assert run(recipe(days, "second", "day2", against=[str(days / "first")]), IN_MEMORY) == 0
    capsys.readouterr()
    out = read_output(days / "second")
    assert_conserved(out)
    jsonschema.validate(out["stats"], stats_schema())
    day1 = str(days / "day1.parquet")
    found = {(d["source"]["row"], d["reason"]): d["duplicate_of"] for reason in out["dropped"] for d in out["dropped"][reason]}
    assert found == {
        (0, "duplicate_exact"): {"file": day1, "row": 3, "in": str(index)},
        (1, "duplicate_exact"): {"file": day1, "row": 17, "in": str(index)},
        (2, "duplicate_near"): {"file": day1, "row": 8, "in": str(index)},
        (3, "duplicate_near"): {"file": day1, "row": 25, "in": str(index)},
        (10, "duplicate_exact"): {"file": str(days / "day2.parquet"), "row": 9},  # within the run
    }
    assert out["stats"]["dedup_against"] == {"references": [str(index)], "duplicate_exact": 2, "duplicate_near": 2}
    assert out["stats"]["records"]["train"] + out["stats"]["records"]["validation"] == 6
    # The second run's own index holds what it kept: a third run against both drops all of day 2.
    assert json.loads((days / "second" / "dedup_index" / "index.json").read_text())["examples"] == 6


def test_indexes_that_do_not_fit_stop_the_run_before_it_writes(days, capsys):
    assert run(recipe(days, "exact_only", "day1", near=None), IN_MEMORY) == 0
    cases = [
        ({"against": [str(days / "nowhere")]}, "has no readable dedup index"),
        ({"against": [str(days / "exact_only")]}, "ran without near dedup"),
        ({"against": [str(days / "exact_only")], "near": None, "fields": ["q"]}, "compared whole examples, this run compares fields q"),
        ({"against": [str(days / "exact_only")], "near": {"threshold": 0.8, "num_perm": 64}}, "ran without near dedup"),
    ]
    for dedup, message in cases:
        capsys.readouterr()
        assert run(recipe(days, "refused", "day2", **dedup), IN_MEMORY) == 2
        assert message in capsys.readouterr().err
        assert not (days / "refused").exists()
