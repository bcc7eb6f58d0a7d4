"""input.sources: a three-source mixture gets its weights within 1 % of the train split,
writes the same bytes on one worker and two, names each record's source, and gives per-source
figures in stats.json, the summary and the report."""

import random

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.stats import stats_schema
from tests.beam_pipeline.helpers import IN_MEMORY, assert_conserved, read_output, run, snapshot, write_recipe

WEIGHTS = {"tickets": 0.5, "docs": 0.3, "synthetic": 0.2}
ROWS = {"tickets": 400, "docs": 120, "synthetic": 600}


def test_three_sources_get_their_weights_and_the_same_bytes_on_two_workers(tmp_path, capsys):
    rng = random.Random(7)
    for name, count in ROWS.items():
        rows = [{"q": f"{name} {i} " + " ".join(f"w{rng.randrange(10**6)}" for _ in range(5)),
                 "a": " ".join(f"w{rng.randrange(10**6)}" for _ in range(12))} for i in range(count)]
        rows[3] = {"q": None, "a": None}  # rejected: counted against its source
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / f"{name}.parquet")
    recipe = write_recipe(tmp_path, {
        "input": {"sources": [{"name": name, "paths": [str(tmp_path / f"{name}.parquet")], "weight": weight}
                              for name, weight in WEIGHTS.items()]},
        "template": {"messages": [{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}]},
        "model": "gpt-4o-mini-2024-07-18", "split": {"validation_fraction": 0.1},
        "output": {"path": str(tmp_path / "one"), "provenance": True},
    })
    assert run(recipe, IN_MEMORY) == 0
    err = capsys.readouterr().err
    out = read_output(tmp_path / "one")
    assert_conserved(out)
    stats = out["stats"]
    jsonschema.validate(stats, stats_schema())
    sources = stats["sources"]
    train = stats["records"]["train"]
    for name, weight in WEIGHTS.items():
        assert abs(sources[name]["train"] / train - weight) <= 0.01
        assert abs(sources[name]["achieved_share"] - weight) <= 0.01
        assert sources[name]["read"] == ROWS[name] and sources[name]["rejected"] == 1
    assert sum(s["train"] for s in sources.values()) == train
    assert sum(s["train_tokens"] for s in sources.values()) == stats["tokens"]["train"]
    # docs limits the mixture: it keeps every train example; the others are downsampled.
    assert sources["docs"]["train"] == sources["docs"]["kept_before_mixing"] and "downsampled" not in sources["docs"]["dropped"]
    assert stats["records"]["dropped"]["downsampled"] == sum(s["dropped"].get("downsampled", 0) for s in sources.values())
    # The validation split keeps its fraction.
    assert abs(stats["records"]["validation"] / (train + stats["records"]["validation"]) - 0.1) < 0.03
    # Every record carries its source's name.
    assert {p["name"] for p in out["provenance"]["train"]} == set(WEIGHTS)
    assert all(d["source"]["name"] in WEIGHTS for d in out["dropped"]["downsampled"] + out["rejected"])
    assert all(p["name"] == p["file"].rsplit("/", 1)[1].removesuffix(".parquet") for p in out["provenance"]["train"])
    assert "source      docs: " in err and "Sources (weighted mixture)" in (tmp_path / "one" / "report.html").read_text()

    assert run(recipe, "--output", str(tmp_path / "two"), "--direct_num_workers=2",
               "--direct_running_mode=multi_processing") == 0
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    for name in files:
        if name.name not in ("report.html", "_FTPREP"):  # they name the output directory
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
