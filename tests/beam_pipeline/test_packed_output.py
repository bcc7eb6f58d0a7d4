"""target.packing with output.tokens: each split's tokenized rows packed by best-fit decreasing
over the whole split — equal to TRL's own ``pack_dataset`` of the same examples, never crossing
an example, the same bytes on one worker and two, each example's source kept."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from beam_pipeline.cli import main
from beam_pipeline.summary import run_summary
from tests.beam_pipeline.helpers import IN_MEMORY, write_recipe
from tests.real_tokenizers import folder

datasets = pytest.importorskip("datasets")

MAX_LENGTH = 256
WORDS = "the order shipped on monday refund ticket please help status delayed parcel 東京 ünï".split()
TWO_WORKERS = ("--direct_num_workers=2", "--direct_running_mode=multi_processing")


def corpus(n: int = 240, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = [{"messages": [{"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(1, 40)))},
                          {"role": "assistant", "content": " ".join(rng.choices(WORDS, k=rng.randint(1, 70)))}]}
            for _ in range(n)]
    return rows + rows[:15]  # duplicates: dedup leaves them out of the packing


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The same data unpacked and packed (two shards a split), run once for the tests below."""
    tmp_path = tmp_path_factory.mktemp("packing")
    return {"tmp": tmp_path, "plain": run(tmp_path, "plain", packing=False),
            "packed": run(tmp_path, "packed", packing=True, num_shards=2)}


def run(tmp_path: Path, name: str, *, packing: bool, form: str = "trl", args=(IN_MEMORY,), **output) -> Path:
    """Three input files (several units), dedup on, a validation split, provenance."""
    inputs = tmp_path / "in"
    if not inputs.exists():
        inputs.mkdir(parents=True)
        rows = corpus()
        for part in range(3):
            (inputs / f"part-{part}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[part::3]))
    (tmp_path / name).mkdir(parents=True, exist_ok=True)
    recipe = write_recipe(tmp_path / name, {
        "input": {"paths": [str(inputs / "*.jsonl")], "examples": "chat"},
        "target": {"kind": "hf", "tokenizer": str(folder("qwen2_5")), "max_length": MAX_LENGTH, "packing": packing},
        "dedup": {"exact": True}, "split": {"validation_fraction": 0.2}, "limits": {"fail_fast_rows": 0},
        "output": {"path": str(tmp_path / name / "out"), "format": "parquet", "tokens": form, "provenance": True,
                   **output}})
    assert main(["run", recipe, *args]) == 0
    return tmp_path / name / "out"


def split_of(out: Path, split: str):
    return datasets.load_dataset("parquet", data_files=sorted(str(p) for p in (out / split).glob("*.parquet")))["train"]


def sources(out: Path, split: str) -> list[dict]:
    return [json.loads(line) for path in sorted((out / "__provenance__" / split).glob("*.jsonl"))
            for line in path.read_text().splitlines()]


def test_packed_rows_are_trl_s_packing_of_the_same_examples(runs):
    pack_dataset = pytest.importorskip("trl.data_utils").pack_dataset
    plain, packed = runs["plain"], runs["packed"]
    assert len(list((packed / "train").glob("*.parquet"))) == 2
    assert not (packed / "_temporary").exists()  # the packing plans went with pass 1's files
    for split in ("train", "validation"):
        examples = split_of(plain, split)
        reference = pack_dataset(examples, MAX_LENGTH, "bfd", {"batch_size": len(examples)})
        ours = split_of(packed, split)
        assert ours.column_names == ["input_ids", "assistant_masks", "seq_lengths"]
        assert ours[:] == reference[:]
    stats = json.loads((packed / "stats.json").read_text())
    rows = split_of(packed, "train")
    assert stats["records"]["dropped"]["duplicate_exact"] == 15
    assert stats["packing"]["written"] is True
    assert stats["packing"]["sequences"] == len(rows) < stats["records"]["train"]
    assert stats["packing"]["examples"] == sum(len(s) for s in rows["seq_lengths"]) == stats["records"]["train"]
    assert stats["packing"]["tokens"] == sum(map(len, rows["input_ids"])) == stats["tokens"]["train"]
    assert stats["tokens"]["trained"] == sum(sum(m) for split in ("train", "validation")
                                             for m in split_of(packed, split)["assistant_masks"])
    card = (packed / "README.md").read_text()
    assert "Rows are packed" in card and "seq_lengths: List(int64)" not in card  # features in the header, as datasets wants
    assert "name: seq_lengths" in card


def test_a_packed_row_holds_whole_examples_and_says_whose(runs):
    plain, packed = runs["plain"], runs["packed"]
    for split in ("train", "validation"):
        by_source = {(s["file"], s["row"]): example for s, example in
                     zip(sources(plain, split), split_of(plain, split))}
        seen = []
        rows, where = split_of(packed, split), iter(sources(packed, split))
        for sequence, row in enumerate(rows):
            assert sum(row["seq_lengths"]) == len(row["input_ids"]) <= MAX_LENGTH
            at = 0
            for length in row["seq_lengths"]:  # every segment is one example, whole, masks with it
                source = next(where)
                assert source["sequence"] == sequence
                example = by_source[(source["file"], source["row"])]
                assert row["input_ids"][at:at + length] == example["input_ids"]
                assert row["assistant_masks"][at:at + length] == example["assistant_masks"]
                seen.append((source["file"], source["row"]))
                at += length
        assert next(where, None) is None
        assert sorted(seen) == sorted(by_source)  # every example once, none split, none lost


def test_one_worker_and_two_write_the_same_bytes(runs):
    one = runs["packed"]
    two = run(runs["tmp"], "two", packing=True, num_shards=2, args=TWO_WORKERS)
    written = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file() and p.suffix in (".parquet", ".jsonl"))
    assert len([p for p in written if p.parts[0] != "dropped"]) == 8  # 2 splits x 2 shards, and their provenance
    for path in written:
        assert (one / path).read_bytes() == (two / path).read_bytes(), path


def test_packed_labels_carry_position_ids_that_restart_at_each_example(tmp_path):
    out = run(tmp_path, "labels", packing=True, form="labels")
    rows = split_of(out, "train")
    assert rows.column_names == ["input_ids", "attention_mask", "labels", "position_ids", "seq_lengths"]
    schema = pq.read_schema(next((out / "train").glob("*.parquet")))
    assert str(schema.field("position_ids").type.value_type) == "int64"
    for row in rows:
        expected = [p for length in row["seq_lengths"] for p in range(length)]
        assert row["position_ids"] == expected
        assert len(row["labels"]) == len(row["input_ids"]) == len(row["attention_mask"])
        assert row["labels"][0] == -100  # each example starts with its prompt


def test_packing_tokenized_rows_needs_parquet(tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text(json.dumps(corpus(1)[0]) + "\n")
    recipe = write_recipe(tmp_path, {
        "input": {"paths": [str(tmp_path / "in.jsonl")], "examples": "chat"},
        "target": {"kind": "hf", "tokenizer": str(folder("qwen2_5")), "max_length": MAX_LENGTH, "packing": True},
        "output": {"path": str(tmp_path / "out"), "tokens": "trl"}})
    assert main(["run", recipe, IN_MEMORY]) == 2
    assert "writes packed rows as Parquet: set output.format: parquet" in capsys.readouterr().err


def test_the_summary_and_the_report_show_the_packed_rows(runs):
    out = runs["packed"]
    stats = json.loads((out / "stats.json").read_text())
    packing = stats["packing"]
    assert (f"packed      {packing['examples']:,} train examples into {packing['sequences']:,} rows of at most 256 "
            f"tokens ({packing['fill']:.1%} full") in "\n".join(run_summary(stats, str(out)))
    page = (out / "report.html").read_text()
    assert "Trained tokens in the first rows written" in page
    shown_ids, shown_bits = [], []  # the first 4 examples of each of the first 3 rows (none cut at this length)
    rows = split_of(out, "train").select(range(3))
    for row in rows:
        end = sum(row["seq_lengths"][:4])
        shown_ids += row["input_ids"][:end]
        shown_bits += row["assistant_masks"][:end]
    assert page.count('<span class="tk on">') == sum(shown_bits) + 1  # + the legend's
    assert page.count('<span class="tk') == len(shown_ids) + 2  # + the legend's two
    assert page.count('<span class="ex">') == sum(min(len(s), 4) for s in rows["seq_lengths"] if len(s) > 1)
    assert page.count("examples, the first 4 shown") == sum(len(s) > 4 for s in rows["seq_lengths"])
    assert "&lt;|im_start|&gt;" in page and "\\n" in page  # special tokens and line breaks visible
