import json

import pytest

from beam_pipeline.launch import main, run_arguments
from tests.beam_pipeline.helpers import IN_MEMORY, read_output


def test_launcher_flags_become_the_run_command_line():
    command = run_arguments([
        "--recipe=gs://b/r.yaml", "--input=gs://b/a/*.parquet,gs://b/c.csv", "--input=gs://b/d.csv",
        "--output=gs://b/out", "--overrides={split.seed: 3, dedup.exact: false, model: gpt-4o}",
        "--set=split.validation_fraction=0.1", "--overwrite=true", "--no_wait=false", "--runner=DataflowRunner",
        "--project=p", "--job_endpoint=", "--input=", "--encodings_url=",
    ])
    assert command == [
        "run", "gs://b/r.yaml", "--input", "gs://b/a/*.parquet", "--input", "gs://b/c.csv", "--input", "gs://b/d.csv",
        "--output", "gs://b/out", "--overrides={split.seed: 3, dedup.exact: false, model: gpt-4o}",
        "--set", "split.validation_fraction=0.1", "--overwrite", "--runner=DataflowRunner", "--project=p",
    ]


@pytest.mark.parametrize("argv, message", [
    (["--recipe=r.yaml", "--overrides=[1, 2]"], "--overrides must be a mapping"),
    (["--recipe=r.yaml", "--overrides={a: [}"], "--overrides does not parse as YAML"),
])
def test_bad_overrides_are_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_boolean_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--recipe=r.yaml", "--overwrite=perhaps"])
    assert exit_.value.code == 2
    assert "expected true or false" in capsys.readouterr().err


def test_launcher_runs_a_recipe(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"q": f"question {i}?", "a": f"answer {i}."}) for i in range(6)) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "input: {paths: [unused]}\n"
        "template: {format: chat, messages: [{role: user, content: '{{ q }}'}, {role: assistant, content: '{{ a }}'}]}\n"
        "model: gpt-4o-mini-2024-07-18\noutput: {path: unused}\n"
    )
    code = main([f"--recipe={recipe}", f"--input={rows}", f"--output={tmp_path / 'out'}",
                 "--overrides={split.validation_fraction: 0.5, split.seed: 1}", IN_MEMORY])
    assert code == 0
    out = read_output(tmp_path / "out")
    assert len(out["train"]) + len(out["validation"]) == 6
    assert out["stats"]["split"] == {"validation_fraction": 0.5, "seed": 1}
