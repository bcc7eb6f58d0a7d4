"""An exception nobody expected, in any per-record step, rejects that record alone as
``internal_error`` with the exception text; the run goes on and every row is accounted for."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.beam_pipeline.helpers import IN_MEMORY, assert_conserved, read_output, run, write_recipe

def poisoned(function, poison: str):
    """``function``, raising for the one record whose text holds ``poison``."""
    def wrapper(*args, **kwargs):
        if poison in repr(args) + repr(kwargs):
            raise RuntimeError(f"boom on {poison}")
        return function(*args, **kwargs)
    return wrapper


# (module, attribute) of a per-record step; each is patched to fail on a row of its own.
STEPS = [
    ("transforms.clean", "clean_fields"),
    ("transforms.pii.PiiScanner", "redact"),
    ("transforms.template.ExampleTemplate", "render"),
    ("transforms.validate", "validate_example"),
    ("transforms.tokens.TokenCounter", "count"),
    ("transforms.filters.ExampleFilter", "reason"),
    ("transforms.dedup", "digest"),
    ("transforms.split", "assign_split"),
]


def _owner(target: str):
    import importlib

    module_name, _, class_name = target.rpartition(".")
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError:
        return getattr(importlib.import_module(module_name), class_name)


def test_an_exception_in_any_step_rejects_only_its_record(tmp_path, monkeypatch):
    """One run, one poisoned row per step: row i makes step i raise, and only row i leaves, as
    internal_error with the exception's text; the clean rows go through every step."""
    poisons = {}
    for index, (target, name) in enumerate(STEPS):
        owner = _owner(target)
        if not hasattr(owner, name):
            pytest.fail(f"{target}.{name} is gone: update STEPS")
        poisons[index] = f"poison-{name}"
        monkeypatch.setattr(owner, name, poisoned(getattr(owner, name), poisons[index]))

    rows = [{"q": f"question {i}?", "a": f"answer {i}."} for i in range(len(STEPS) + 4)]
    for index, poison in poisons.items():
        rows[index]["q"] = f"the {poison} row?"
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    path = write_recipe(tmp_path, {
        "input": {"paths": [str(tmp_path / "rows.parquet")]},
        "template": {"messages": [{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}]},
        "model": "gpt-4o-mini-2024-07-18",
        "pii": {}, "filters": {"min_chars": {"a": 1}}, "dedup": {"exact": True},
        "output": {"path": str(tmp_path / "out"), "provenance": True},
    })
    assert run(path, IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    source = str(tmp_path / "rows.parquet")
    outcomes = assert_conserved(out, {(source, i) for i in range(len(rows))})
    for index in poisons:
        assert outcomes.pop((source, index)) == "rejected:internal_error", STEPS[index]
    assert set(outcomes.values()) <= {"train", "validation"}
    messages = {r["source"]["row"]: r["errors"] for r in out["rejected"]}
    assert messages == {index: [{"code": "internal_error", "message": f"RuntimeError: boom on {poison}"}]
                        for index, poison in poisons.items()}
