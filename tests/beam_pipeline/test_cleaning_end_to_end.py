"""PII, filters and deduplication through the whole pipeline, on shards written to tmp_path."""

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.beam_pipeline.helpers import (
    IN_MEMORY,
    assert_counts_add_up,
    read_lines,
    read_output,
    run,
    write_recipe,
)
from transforms.minhash import shingles
from transforms.text import normalize_text

TEMPLATE = {
    "system": "You are Acme support.",
    "messages": [{"role": "user", "content": "{{ question }}"}, {"role": "assistant", "content": "{{ answer }}"}],
}


def answer(i):
    """Distinct answers: 25 words drawn per row from a 400-word vocabulary."""
    rng = random.Random(i)
    return f"Answer {i}: " + " ".join(f"w{rng.randrange(400)}" for _ in range(25)) + "."


def planted_shards(tmp_path):
    """Three shards. Planted: exact copies (one differing only in case and spacing) across shards,
    a near copy (one word changed), a shard-internal exact copy, and a repeated-text answer."""
    rows = [{"question": f"Question {i}?", "answer": answer(i)} for i in range(60)]
    shard0, shard1, shard2 = rows[:20], rows[20:40], rows[40:]
    shard1.append({"question": "Question 3?", "answer": answer(3)})                     # exact of shard0 row 3
    shard2.append({"question": "QUESTION  3?", "answer": answer(3).upper()})            # exact after normalising
    shard2.append({"question": "Question 5?", "answer": answer(5).replace("Answer", "Reply")})  # near of row 5
    shard0.append({"question": "Question 7?", "answer": answer(7)})                     # exact, same shard
    shard1.append({"question": "Eat?", "answer": "Eat a banana! " * 300})
    for index, shard in enumerate((shard0, shard1, shard2)):
        pq.write_table(pa.Table.from_pylist(shard), tmp_path / f"part-{index}.parquet", row_group_size=8)


def recipe(tmp_path, **changes):
    doc = {
        "input": {"paths": [str(tmp_path / "part-*.parquet")]},
        "template": TEMPLATE,
        "model": "gpt-4o-mini",
        "split": {"validation_fraction": 0.3},
        # min_chars drops nothing here: its reason is counted (0) but gets no dropped/ folder.
        "filters": {"max_repetition": 0.5, "min_chars": {"example": 1}},
        "dedup": {"exact": True, "near": {"threshold": 0.7, "shingle": 3}},
        "output": {"path": str(tmp_path / "out")},
    }
    doc.update(changes)
    return write_recipe(tmp_path, doc)


def dropped(output: Path, reason: str):
    return read_lines(output / "dropped" / reason)


def test_planted_duplicates_leave_with_the_same_survivors_on_one_and_two_workers(tmp_path, capsys):
    planted_shards(tmp_path)
    path = recipe(tmp_path)
    assert run(path, "--output", str(tmp_path / "one"), IN_MEMORY) == 0
    assert run(path, "--output", str(tmp_path / "two"), "--direct_num_workers=2", "--direct_running_mode=multi_processing") == 0

    outputs = {name: read_output(tmp_path / name) for name in ("one", "two")}
    for out in outputs.values():
        assert_counts_add_up(out)
        assert out["stats"]["records"]["dropped"] == {"duplicate_exact": 3, "duplicate_near": 1, "filter_min_chars": 0,
                                                      "filter_repetition": 1}
    one, two = (tmp_path / "one"), (tmp_path / "two")
    assert sorted(p.name for p in (one / "dropped").iterdir()) == ["duplicate_exact", "duplicate_near", "filter_repetition"]
    assert sorted(p.name for p in (two / "dropped").iterdir()) == ["duplicate_exact", "duplicate_near", "filter_repetition"]
    # A normal run prints ftprep's lines only: Beam's own (its workers' included) go to the log.
    err = capsys.readouterr().err
    assert "apitools" not in err and "Logging handler created" not in err
    for reason in ("duplicate_exact", "duplicate_near"):
        assert sorted(map(json.dumps, dropped(one, reason))) == sorted(map(json.dumps, dropped(two, reason)))
    survivors = {split: sorted(map(json.dumps, outputs["one"][split])) for split in ("train", "validation")}
    assert survivors == {split: sorted(map(json.dumps, outputs["two"][split])) for split in ("train", "validation")}

    by_source = {(Path(d["source"]["file"]).name, d["source"]["row"]): d for d in dropped(one, "duplicate_exact")}
    assert set(by_source) == {("part-1.parquet", 20), ("part-2.parquet", 20), ("part-0.parquet", 20)}
    assert {Path(d["duplicate_of"]["file"]).name for d in by_source.values()} == {"part-0.parquet"}
    (near,) = dropped(one, "duplicate_near")
    assert (Path(near["source"]["file"]).name, near["source"]["row"]) == ("part-2.parquet", 21)
    assert (Path(near["duplicate_of"]["file"]).name, near["duplicate_of"]["row"]) == ("part-0.parquet", 5)


def test_no_validation_example_has_a_duplicate_in_train(tmp_path):
    planted_shards(tmp_path)
    assert run(recipe(tmp_path), IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)

    def text(example):
        return normalize_text(" ".join(m["content"] for m in example["messages"]))

    train = [set(shingles(text(e), 3)) for e in out["train"]]
    for example in out["validation"]:
        mine = set(shingles(text(example), 3))
        assert all(len(mine & other) / len(mine | other) < 0.7 for other in train)


def test_pii_is_redacted_everywhere_and_counted(tmp_path):
    rows = [
        {"question": "My e-mail is ada@example.com, call +44 20 7946 0958", "answer": "Thanks, we will reach out."},
        {"question": "Is my card 4111 1111 1111 1111 safe?", "answer": "Yes, we never store it."},
        {"question": "Here is my key sk-proj-abcdefghijklmnopqrstuvwx1234", "answer": "Please rotate it now."},
        {"question": "Version 2.10.4 released on 2024-01-15, order 123456789?", "answer": "Yes."},
        {"question": "Write to bob@example.org", "answer": None},  # rejected later: null_field
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    (tmp_path / "t.csv").write_text("question,answer\nragged row with carol@example.net,x,extra\n")
    path = recipe(tmp_path, input={"paths": [str(tmp_path / "t.parquet"), str(tmp_path / "t.csv")]},
                  pii={"action": {"secret": "reject"}}, dedup={}, filters={})
    assert run(path, IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    assert out["stats"]["pii"] == {"card": 1, "email": 3, "phone": 1, "secret": 1}
    assert out["stats"]["rejections"] == {"malformed_row": 1, "null_field": 1, "pii": 1}

    everything = json.dumps(out)
    for value in ("ada@example.com", "7946 0958", "4111 1111", "sk-proj-", "bob@example.org", "carol@example.net"):
        assert value not in everything
    kept = " ".join(m["content"] for e in out["train"] + out["validation"] for m in e["messages"])
    assert "[EMAIL]" in kept and "[PHONE]" in kept and "[CARD]" in kept
    assert "Version 2.10.4 released on 2024-01-15, order 123456789?" in kept
