"""An exception nobody expected, in any per-record step, rejects that record alone as
``internal_error`` with the exception text; the run goes on and every row is accounted for."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.beam_pipeline.helpers import IN_MEMORY, assert_conserved, read_output, run, write_recipe

POISON = "poison row"


def poisoned(function):
    """``function``, raising for the one record whose text holds POISON."""
    def wrapper(*args, **kwargs):
        if POISON in repr(args) + repr(kwargs):
            raise RuntimeError("boom on the poison row")
        return function(*args, **kwargs)
    return wrapper


# (module, attribute) of a per-record step; each is patched in turn.
STEPS = [
    ("transforms.clean", "clean_fields"),
    ("transforms.pii.PiiScanner", "redact"),
    ("transforms.template.ExampleTemplate", "render"),
    ("transforms.validate", "validate_example"),
    ("transforms.tokens.TokenCounter", "count"),
    ("transforms.filters.ExampleFilter", "reason"),
    ("transforms.dedup", "_keyed"),
    ("transforms.split", "assign_split"),
]


@pytest.mark.parametrize("target, name", STEPS, ids=[name for _, name in STEPS])
def test_an_exception_in_a_step_rejects_only_its_record(tmp_path, monkeypatch, target, name):
    import importlib

    module_name, _, class_name = target.partition(".") if target.count(".") == 1 else target.rpartition(".")
    try:
        owner = importlib.import_module(target)
    except ModuleNotFoundError:
        owner = getattr(importlib.import_module(module_name), class_name)
    if not hasattr(owner, name):
        pytest.fail(f"{target}.{name} is gone: update STEPS")
    monkeypatch.setattr(owner, name, poisoned(getattr(owner, name)))

    rows = [{"q": f"question {i}?", "a": f"answer {i}."} for i in range(6)]
    rows[3]["q"] = f"the {POISON}?"
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
    outcomes = assert_conserved(out, {(str(tmp_path / "rows.parquet"), i) for i in range(6)})
    assert outcomes.pop((str(tmp_path / "rows.parquet"), 3)) == "rejected:internal_error"
    assert set(outcomes.values()) <= {"train", "validation"}
    (rejected,) = out["rejected"]
    assert rejected["errors"] == [{"code": "internal_error", "message": "RuntimeError: boom on the poison row"}]
