"""The benchmark's parts work and its data is deterministic; the full run is marked slow."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.generate import generate, rows

REPO = Path(__file__).resolve().parents[2]


def test_generated_rows_are_deterministic_and_realistic():
    first, again = rows(2000, seed=3), rows(2000, seed=3)
    assert first == again
    assert any(r["output"] == "" for r in first)  # rows to reject
    assert len({json.dumps(r, sort_keys=True) for r in first}) < len(first)  # duplicates
    assert any(any(ord(c) > 127 for c in r["output"]) for r in first)  # non-ASCII
    mean_chars = sum(len(r["instruction"]) + len(r["input"] or "") + len(r["output"]) for r in first) / len(first)
    assert 1000 < mean_chars < 2000


def test_near_duplicate_rows_are_close_copies_and_leave_the_default_rows_alone():
    plain, near = rows(1000, seed=3), rows(1000, seed=3, near_duplicates=0.4)
    assert rows(1000, seed=3, near_duplicates=0.0) == plain
    first: dict[str, str] = {}
    changed = []  # words changed from the first row with the same instruction (copies of copies drift)
    for row in near:
        earlier = first.setdefault(row["instruction"], row["output"])
        if earlier is not row["output"]:
            changed.append(sum(a != b for a, b in zip(row["output"].split(" "), earlier.split(" "))))
    assert 300 < len(changed) < 500  # ~40 % near duplicates
    assert sum(n <= 3 for n in changed) > 0.6 * len(changed)
    assert rows(1000, seed=3, near_duplicates=0.4) == near


def test_shards_are_byte_identical_across_runs(tmp_path):
    a = generate(tmp_path / "a", 300, shards=2)
    b = generate(tmp_path / "b", 300, shards=2)
    digest = lambda paths: [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]  # noqa: E731
    assert digest(a) == digest(b)


def test_baselines_import_nothing_from_ftprep():
    for name in ("plain.py", "pandas_script.py", "hf_datasets.py"):
        source = (REPO / "benchmarks" / name).read_text()
        assert not any(f"from {package}" in source or f"import {package}" in source
                       for package in ("transforms", "beam_pipeline", "schemas")), name


def test_plain_baseline_writes_every_kept_row_once(tmp_path, monkeypatch):
    from transforms.encodings import load_encoding

    load_encoding("o200k_base")  # the benchmark resolves the encoding for the scripts' tiktoken too
    paths = generate(tmp_path / "data", 120, shards=2)
    out = tmp_path / "plain"
    result = subprocess.run([sys.executable, "-m", "benchmarks.plain", str(out), *map(str, paths)],
                            capture_output=True, text=True, check=True, cwd=REPO)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    lines = [line for name in ("train", "validation") for line in (out / f"{name}.jsonl").read_text().splitlines()]
    assert report["rows"] == 120 and len(lines) == report["kept"] == len(set(lines)) > 100


@pytest.mark.slow
def test_benchmark_runs_end_to_end(tmp_path):
    pytest.importorskip("pandas")
    pytest.importorskip("psutil")
    from benchmarks.run import main

    main(["--rows", "400", "--repeats", "1", "--work", str(tmp_path), "--table", str(tmp_path / "results.md")])
    table = (tmp_path / "results.md").read_text()
    assert "plain script" in table and "ftprep, 1 worker" in table


def test_against_a_commit_runs_that_commit_s_code(tmp_path):
    """--against checks out the commit; its commands run there, with it first on the path."""
    from benchmarks.run import checkout

    commit, tree = checkout("HEAD", tmp_path)
    assert (tree / "beam_pipeline" / "cli.py").is_file() and (tree / "benchmarks" / "recipe.yaml").is_file()
    loaded = subprocess.run([sys.executable, "-c", "import beam_pipeline; print(beam_pipeline.__file__)"],
                            env={"PYTHONPATH": str(tree)}, cwd=tree, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip().startswith(str(tree))


def test_profile_groups_samples_by_the_first_matching_stage():
    from benchmarks.profile import REST, shares

    raw = "\n".join([
        "main (cli.py:1);_CountTokensFn.handle (/x/transforms/tokens.py:331);Encoding.encode_ordinary (/v/tiktoken/core.py:66) 3",
        "main (cli.py:1);_CountTokensFn.handle (/x/transforms/tokens.py:331) 1",
        "main (cli.py:1);process_encoded (/v/apache_beam/runners/worker/bundle_processor.py:247) 4",
        "main (cli.py:1);add (/x/transforms/stats.py:51) 2",
    ])
    assert shares(raw) == {REST: 0.4, "tokenisation (tiktoken `encode_ordinary`)": 0.3, "stats": 0.2,
                           "token accounting around it": 0.1}


@pytest.mark.slow
def test_the_resume_benchmark_runs_end_to_end(tmp_path, capsys):
    from benchmarks.resume import main

    main(["--rows", "20000", "--repeats", "1", "--work", str(tmp_path)])
    assert "outputs byte-identical: yes" in capsys.readouterr().out


def test_near_curve_pairs_have_the_similarity_asked_for_and_identical_texts_are_dropped():
    import random

    from benchmarks.near_curve import ftprep_drops, pair

    rng = random.Random(1)
    pairs = [pair(rng, 150, target) for target in (0.5, 0.7, 0.8, 0.9, 1.0)]
    assert [round(j, 1) for _, _, j in pairs] == [0.5, 0.7, 0.8, 0.9, 1.0]
    assert ftprep_drops(pairs, 0.8)[-1] is True  # the same text always shares every band
    assert ftprep_drops(pairs, 0.8)[0] is False
