import io
import time

import pyarrow as pa
import pyarrow.parquet as pq

from beam_pipeline.progress import Progress, ProgressReporter, ProgressWriter, progress_line, read_progress


def test_workers_lines_add_up(tmp_path):
    one, two = ProgressWriter(str(tmp_path)), ProgressWriter(str(tmp_path))
    one.planned("a", 2)
    two.planned("b", 1)
    one.done("a", 10)
    two.done("a", 5)
    (tmp_path / "partial.log").write_text("D\t15\ta\nD\t1")  # its last line is still being written
    progress = read_progress(str(tmp_path))
    assert progress.planned == {"a": 2, "b": 1}
    assert progress.done == {"a": 3} and progress.rows == 30 and progress.units == 3
    assert progress.files_done() == 1


def test_progress_line_says_when_reading_is_over():
    p = Progress(planned={"a": 2, "b": 1}, done={"a": 2}, rows=4000)
    assert progress_line(p, 2, 2.0) == "read 2/3 units, 1/2 files, 4,000 rows, 2,000 rows/s, 2 s"
    assert progress_line(p, 3, 2.0).startswith("read 2/? units")
    p.done["b"] = 1
    assert progress_line(p, 2, 4.0).endswith("— all read; finishing (dedup, split, writing)")
    assert progress_line(p, 2, 9.0, read_for=4.0).startswith("read 3/3 units, 2/2 files, 4,000 rows, 1,000 rows/s, 9 s")


def test_reporter_writes_plain_lines_to_a_log_only_when_something_moved():
    stream = io.StringIO()
    reporter = ProgressReporter(1, stream=stream, interval=0.02).start()
    writer = ProgressWriter(reporter.directory)
    writer.planned("f", 2)
    time.sleep(0.1)
    writer.done("f", 7)
    time.sleep(0.1)
    reporter.stop()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("read 0/2 units, 0/1 files, 0 rows")
    assert lines[-1].startswith("read 1/2 units, 0/1 files, 7 rows")
    assert len(lines) == len(set(line.rsplit(", ", 2)[0] for line in lines)), "no repeated lines"


def test_a_local_run_reports_every_unit(tmp_path):
    import apache_beam as beam

    from beam_pipeline.options import pipeline_options
    from beam_pipeline.pipeline import build_pipeline, plan_job
    from beam_pipeline.recipe import recipe_from_document

    pq.write_table(pa.table({"q": [f"q{i}" for i in range(50)], "a": ["a"] * 50}), tmp_path / "x.parquet", row_group_size=20)
    (tmp_path / "y.csv").write_text("q,a\nhi,there\n")
    recipe = recipe_from_document({
        "input": {"paths": [str(tmp_path / "x.parquet"), str(tmp_path / "y.csv")]},
        "template": {"messages": [{"role": "user", "content": "{{ q }}"}, {"role": "assistant", "content": "{{ a }}"}]},
        "model": "gpt-4o-mini-2024-07-18", "output": {"path": str(tmp_path / "out")}})
    progress_dir = tmp_path / "progress"
    progress_dir.mkdir()
    with beam.Pipeline(options=pipeline_options(["--direct_running_mode=in_memory"])) as p:
        build_pipeline(p, plan_job(recipe), progress=ProgressWriter(str(progress_dir)))
    progress = read_progress(str(progress_dir))
    assert progress.units == progress.units_done == 4 and progress.rows == 51 and progress.files_done() == 2


def test_the_reporter_writes_to_stderr_as_it_is_when_it_reports(tmp_path, monkeypatch):
    """During a run fd 2 (and the sys.stderr made before) point at the log; the terminal is the
    sys.stderr put in place then. A reporter made before that still reaches the terminal."""
    import sys

    before, terminal = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", before)
    reporter = ProgressReporter(1, interval=0.05)
    monkeypatch.setattr(sys, "stderr", terminal)
    ProgressWriter(reporter.directory).planned("a", 1)
    reporter.start()
    time.sleep(0.3)
    reporter.stop()
    assert "read 0/1 units" in terminal.getvalue() and before.getvalue() == ""


def test_rows_of_a_unit_still_being_read_count_and_a_log_hears_now_and_then(tmp_path, monkeypatch):
    from beam_pipeline import progress

    writer = ProgressWriter(str(tmp_path))
    writer.planned("a", 1)
    writer.reading("a", 20)
    writer.reading("a", 20)
    assert read_progress(str(tmp_path)).rows == 40 and read_progress(str(tmp_path)).units_done == 0
    writer.done("a", 5)
    assert read_progress(str(tmp_path)).rows == 45 and read_progress(str(tmp_path)).units_done == 1
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.1)
    log = io.StringIO()
    reporter = ProgressReporter(2, stream=log, interval=0.05)
    reporter.start()
    time.sleep(0.5)
    reporter.stop()
    assert len(log.getvalue().splitlines()) >= 2  # nothing moved, yet the log hears from it
