"""Issue 24: a recipe that fails on every row stops the run early, with one line, exit 1."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.recipe import LimitsSpec
from tests.beam_pipeline.helpers import IN_MEMORY, run, write_recipe
from transforms.units import FailFast, RunStopped

MODEL = "gpt-4o-mini-2024-07-18"
SPIN = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}{{ answer }}"


def recipe(tmp_path: Path, rows: int, content: str, **limits) -> str:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"question": [f"q{i} mail jane.roe@example.org" for i in range(rows)],
                             "answer": [f"a{i}" for i in range(rows)]}), path)
    doc = {"input": {"paths": [str(path)]}, "model": MODEL, "limits": limits,
           "template": {"messages": [{"role": "user", "content": "{{ question }}"},
                                     {"role": "assistant", "content": content}]},
           "output": {"path": str(tmp_path / "out")}}
    return write_recipe(tmp_path, doc)


@pytest.mark.parametrize("workers", [[IN_MEMORY], ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]])
def test_a_recipe_that_fails_on_every_row_stops_with_one_line(tmp_path, capsys, workers):
    started = time.monotonic()
    code = run(recipe(tmp_path, 1000, SPIN, max_render_seconds=0.05), *workers)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and time.monotonic() - started < 60
    line = err[-1]
    assert line.startswith("ftprep: error: stopped: the first 20 rows read were all rejected with template_error"), line
    assert "limits.max_render_seconds" in line and "in.parquet row " in line and "[EMAIL]" in line
    assert "jane.roe" not in "\n".join(err)
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_a_share_of_rejections_over_the_limit_stops_the_run(tmp_path, capsys):
    content = "{% if answer[-1] in '0123' %}{{ answer * 10**9 }}{% else %}{{ answer }}{% endif %}"
    code = run(recipe(tmp_path, 200, content, max_rejected_fraction=0.2), IN_MEMORY)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and "over limits.max_rejected_fraction (0.2)" in line, line


def test_mixed_rejections_and_a_switched_off_watch_let_the_run_finish(tmp_path):
    content = "{% if answer[-1] in '02468' %}{{ answer * 10**9 }}{% else %}{{ answer }}{% endif %}"
    assert run(recipe(tmp_path, 100, content), IN_MEMORY) == 0  # half rejected: no single code for all
    assert run(recipe(tmp_path, 30, SPIN, max_render_seconds=0.01, fail_fast_rows=0), IN_MEMORY, "--overwrite") == 0
    assert (tmp_path / "out" / "_SUCCESS").exists()


def test_the_watch_decides_once_on_the_first_rows():
    watch = FailFast(LimitsSpec(fail_fast_rows=3))
    doc = {"source": {"file": "f", "row": 0}, "errors": [{"code": "x", "message": "m"}], "record": {"a": 1}}
    watch.rejected(("x", "y"), doc)
    watch.rejected(("x",), doc)
    watch.check()
    assert watch.deciding
    watch.rejected(("x", "z"), doc)
    with pytest.raises(RunStopped, match="the first 3 rows read were all rejected with x"):
        watch.check()
    late = FailFast(LimitsSpec(fail_fast_rows=2))
    late.kept(1)
    late.rejected(("x",), doc)
    late.check()
    for _ in range(10):
        late.rejected(("x",), doc)
        late.check()  # decided on the first rows: one kept, so never again
