"""Bad recipes, inputs and options fail before the pipeline starts: exit 2 and one line that says what to fix."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_pipeline.cli import main
from tests.beam_pipeline.helpers import IN_MEMORY, run, write_recipe


@pytest.fixture
def data(tmp_path):
    pq.write_table(pa.table({"question": ["q"], "answer": ["a"]}), tmp_path / "qa.parquet")
    return tmp_path


def recipe_doc(tmp_path, **changes):
    doc = {
        "input": {"paths": [str(tmp_path / "*.parquet")]},
        "template": {"messages": [{"role": "user", "content": "{{ question }}"}, {"role": "assistant", "content": "{{ answer }}"}]},
        "model": "gpt-4o-mini-2024-07-18",
        "output": {"path": str(tmp_path / "out")},
    }
    doc.update(changes)
    return doc


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.startswith("ftprep: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"splt": {}}, "splt: unknown key"),
        ({"model": "gpt-5-turbo"}, "unknown model 'gpt-5-turbo'"),
        ({"input": {"paths": ["/nonexistent/*.parquet"]}}, "matches no files"),
        ({"template": {"messages": [{"role": "user", "content": "{{ prompt }}"}, {"role": "assistant", "content": "{{ answer }}"}]}},
         r"column\(s\) prompt that .*qa.parquet does not have; its columns are: question, answer"),
        ({"template": {"messages": [{"role": "user", "content": "{{ question"}, {"role": "assistant", "content": "x"}]}}, "does not parse"),
        ({"output": {}}, "output.path: required key is missing"),
        ({"template": {"messages": [{"role": "user", "content": "{{ questoin }}"}, {"role": "assistant", "content": "{{ answer }}"}]}},
         r"column\(s\) questoin .* \(questoin: did you mean question\?\)"),

        ({"template": {"messages": [{"role": "user", "content": "{{ question }}"},
                                    {"role": "assistant", "content": "{{ answer.__class__.__mro__ }}"}]}},
         r"template_error: template.messages\[1\].content is refused: it uses attribute '__mro__', attribute '__class__'"),
    ],
)
def test_bad_recipes_exit_2_with_one_line(data, capsys, changes, message):
    import re

    assert run(write_recipe(data, recipe_doc(data, **changes)), IN_MEMORY) == 2
    assert re.search(message, error_line(capsys))
    assert not (data / "out").exists()


def test_a_parquet_file_read_as_csv_is_named_not_printed(data, capsys):
    (data / "qa.parquet").rename(data / "qa.csv")
    path = write_recipe(data, recipe_doc(data, input={"paths": [str(data / "qa.csv")]}))
    assert run(path, IN_MEMORY) == 2
    line = error_line(capsys)
    assert "qa.csv is read as csv but looks like a Parquet file (it starts with PAR1); set input.format" in line
    assert "\\x" not in line and "PAR1\x15" not in line


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("ftprep ")


def test_missing_recipe_file(capsys, tmp_path):
    assert run(str(tmp_path / "nope.yaml")) == 2
    assert "does not exist" in error_line(capsys)


def test_recipe_that_is_not_a_mapping(capsys, tmp_path):
    (tmp_path / "r.yaml").write_text("- a\n- b\n")
    assert run(str(tmp_path / "r.yaml")) == 2
    assert "expected a mapping" in error_line(capsys)


def test_overrides_and_input_output_flags(data, capsys):
    path = write_recipe(data, recipe_doc(data, input={"paths": ["/elsewhere/*.csv"]}))
    other = data / "other"
    code = run(path, "--input", str(data / "qa.parquet"), "--output", str(other), "--set", "split.validation_fraction=0",
               "--set", "split.seed=5", IN_MEMORY)
    assert code == 0
    assert "train                1 examples" in capsys.readouterr().err
    assert (other / "_SUCCESS").exists()


def test_bad_override(data, capsys):
    assert run(write_recipe(data, recipe_doc(data)), "--set", "split.validation_fraction=lots", IN_MEMORY) == 2
    assert "split.validation_fraction" in error_line(capsys)
    assert run(write_recipe(data, recipe_doc(data)), "--set", "novalue", IN_MEMORY) == 2
    assert "expected dotted.key=value" in error_line(capsys)


def test_every_flag_that_changes_the_recipe_is_one_override_in_a_fixed_order():
    from beam_pipeline.cli import _parser, recipe_overrides

    args, _ = _parser().parse_known_args([
        "run", "r.yaml", "--on-bad-file", "skip", "--set", "split.seed=4", "--overrides", "{split.seed: 3, dedup.exact: true}",
        "--input", "a.csv", "--encodings-url", "/enc", "--output", "o"])
    assert recipe_overrides(args) == [
        ("split.seed", 3), ("dedup.exact", True), ("split.seed", 4), ("input.paths", ["a.csv"]), ("output.path", "o"),
        ("tokens.encodings_url", "/enc"), ("input.on_bad_file", "skip")]


def test_overrides_are_validated_as_the_recipe_is(data, capsys):
    recipe = write_recipe(data, recipe_doc(data))
    assert run(recipe, "--overrides", "{split.validation_fraction: 2}", IN_MEMORY) == 2
    assert "split.validation_fraction" in error_line(capsys)
    assert run(recipe, "--overrides", "[1, 2]", IN_MEMORY) == 2
    assert "--overrides must be a mapping" in error_line(capsys)
    assert run(recipe, "--set", "model=gpt-9", IN_MEMORY) == 2
    assert "model: unknown model 'gpt-9'" in error_line(capsys)


def test_stray_positional_argument(data, capsys):
    assert run(write_recipe(data, recipe_doc(data)), "extra.yaml", IN_MEMORY) == 2
    assert "unexpected argument(s) extra.yaml" in error_line(capsys)


def test_python_dash_m_is_the_same_cli():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "beam_pipeline", "run", "--help"], capture_output=True, text=True, check=True)
    assert "--overwrite" in result.stdout and "Beam pipeline options" in result.stdout


def test_no_command_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


def test_unknown_runner_fails_before_overwrite_deletes_anything(data, capsys):
    keep = data / "out" / "keep.txt"
    keep.parent.mkdir()
    keep.write_text("previous run")
    assert run(write_recipe(data, recipe_doc(data)), "--overwrite", "--runner=NoSuchRunner") == 2
    assert "Unexpected pipeline runner: NoSuchRunner" in error_line(capsys)
    assert keep.exists()


def test_storage_without_its_fsspec_backend_is_a_usage_error(data, capsys):
    # An unknown protocol stands in for gs:// or s3:// without gcsfs/s3fs installed.
    assert run(write_recipe(data, recipe_doc(data, input={"paths": ["nosuchfs://bucket/*.parquet"]})), IN_MEMORY) == 2
    assert "nosuchfs" in error_line(capsys)
    assert run("nosuchfs://bucket/recipe.yaml") == 2
    assert "cannot read recipe" in error_line(capsys)


def test_output_scheme_beam_cannot_write_is_a_usage_error(data, capsys):
    assert run(write_recipe(data, recipe_doc(data, output={"path": "memory://out"})), IN_MEMORY) == 2
    assert "cannot write to output path memory://out" in error_line(capsys)


@pytest.mark.parametrize("argv, suggestion", [
    (["--outptu", "elsewhere"], "--output"),
    (["--runer=DirectRunner"], "--runner"),
    (["--direct_num_worker=2"], "--direct_num_workers"),
    (["--overwrit"], "--overwrite"),
    (["--s3_endpoint=http://127.0.0.1:9"], "--s3_endpoint_url"),
])
def test_unknown_flags_exit_2_naming_the_closest_known_flag(data, capsys, argv, suggestion):
    """Beam only warns about a flag it does not define and runs on; ftprep refuses it before
    anything runs or is written."""
    assert run(write_recipe(data, recipe_doc(data)), *argv, IN_MEMORY) == 2
    line = error_line(capsys)
    assert f"{argv[0].split('=')[0]} (did you mean {suggestion}?)" in line
    assert not (data / "out").exists()


def test_validate_refuses_unknown_flags_too(data, capsys):
    (data / "x.jsonl").write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    code = main(["validate", str(data / "x.jsonl"), "--model", "gpt-4o-mini", "--output", str(data / "v"),
                 "--validation-fractoin=0.1"])
    assert code == 2
    assert "did you mean --validation-fraction?" in error_line(capsys)


def test_the_summary_ends_with_time_and_rate_without_progress_lines(data, capsys):
    assert run(write_recipe(data, recipe_doc(data)), "--no-progress", IN_MEMORY) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("time ") and last.endswith("rows/s")
