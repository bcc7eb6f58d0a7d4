"""The same recipe for every hosted provider: rows that hold to the provider's schema, the
target named with its pages, counting and limits in stats.json, the provider's job request, and
`ftprep validate --target` showing what an OpenAI file breaks elsewhere."""

import json
from pathlib import Path

import jsonschema
import pytest

from beam_pipeline.cli import main
from transforms.targets.hosted import HostedTarget
from transforms.targets.registry import TARGETS

HOSTED = {kind: target.provider for kind, target in TARGETS.items() if issubclass(target, HostedTarget)}
from tests.beam_pipeline.helpers import IN_MEMORY, assert_counts_add_up, read_output, run

REPO = Path(__file__).resolve().parents[2]
MODELS = {"azure-openai": ["--model", "gpt-4o-mini-2024-07-18"], "together": ["--model", "Qwen/Qwen3-8B", "--max-length", "32768"],
          "fireworks": ["--model", "qwen3-8b", "--max-length", "32768"], "vertex-gemini": ["--model", "gemini-2.5-flash"],
          "bedrock-nova": ["--model", "amazon.nova-lite-v1:0:300k"]}
JOB_KEYS = {"azure-openai": "training_file", "together": "training_file", "fireworks": "dataset",
            "vertex-gemini": "supervisedTuningSpec", "bedrock-nova": "trainingDataConfig"}


@pytest.mark.parametrize("kind", sorted(HOSTED))
def test_the_example_recipe_renders_for_every_provider(kind, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out_dir = tmp_path / "out"
    assert run("examples/recipes/parquet_chat.yaml", "--target", kind, *MODELS[kind], "--output", str(out_dir), IN_MEMORY) == 0
    out = read_output(out_dir)
    assert_counts_add_up(out)
    schema = json.loads((REPO / "schemas" / "targets" / HOSTED[kind].schema_file).read_text())
    for row in out["train"] + out["validation"]:
        jsonschema.validate(row, schema)
    target = out["stats"]["target"]
    assert target["kind"] == kind and target["title"] == HOSTED[kind].title
    assert target["sources"] == dict(HOSTED[kind].sources)
    assert target["counting"]["exact"] == (HOSTED[kind].counting.method == "tiktoken")
    assert out["stats"]["tokens"]["estimated_examples"] == (0 if target["counting"]["exact"] else
                                                             out["stats"]["records"]["train"] + out["stats"]["records"]["validation"])
    assert all(check["ok"] for check in target.get("checks", ()))
    job = json.loads((out_dir / "finetune_job.json").read_text())
    assert JOB_KEYS[kind] in job


def test_validate_shows_what_an_openai_file_breaks_at_another_provider(tmp_path, capsys):
    data = REPO / "examples" / "data" / "chat_examples.jsonl"
    code = main(["validate", str(data), "--target", "bedrock-nova", "--model", "amazon.nova-lite-v1:0:300k",
                 "--output", str(tmp_path / "nova"), IN_MEMORY])
    assert code == 3
    out = read_output(tmp_path / "nova")
    assert out["stats"]["rejections"]["bedrock_nova_tools"] == 1
    (rejected,) = [r for r in out["rejected"] if r["errors"][0]["code"] == "bedrock_nova_tools"]
    assert rejected["source"]["row"] == 10 and "tool" in rejected["errors"][0]["message"]
    assert "bedrock_nova_tools: 1" in capsys.readouterr().out
    # Gemini takes the same tool-calling example, as function-call parts.
    assert main(["validate", str(data), "--target", "vertex-gemini", "--model", "gemini-2.5-flash",
                 "--output", str(tmp_path / "gemini"), IN_MEMORY]) == 3
    gemini = read_output(tmp_path / "gemini")
    assert not any(code.startswith("vertex_gemini") for code in gemini["stats"]["rejections"])
    assert any("tools" in row for row in gemini["train"] + gemini["validation"])
    schema = json.loads((REPO / "schemas" / "targets" / "vertex_gemini.schema.json").read_text())
    for row in gemini["train"] + gemini["validation"]:
        jsonschema.validate(row, schema)


def test_a_file_under_the_providers_minimum_fails_validate_naming_the_limit(tmp_path, capsys):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]} for i in range(2)]
    (tmp_path / "two.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["validate", str(tmp_path / "two.jsonl"), "--target", "fireworks", "--model", "qwen3-8b",
                 "--max-length", "4096", "--output", str(tmp_path / "out"), IN_MEMORY])
    assert code == 3
    stats = read_output(tmp_path / "out")["stats"]
    assert stats["target"]["checks"] == [{"rule": "min_train_examples", "limit": 3, "actual": 2, "ok": False},
                                         {"rule": "max_train_examples", "limit": 3_000_000, "actual": 2, "ok": True}]
    assert "min_train_examples is 3, the run has 2" in capsys.readouterr().out
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Prepared for Fireworks AI: tokens estimated" in page
    assert '<b data-key="target.checks.0.actual">2</b> ✗' in page


def test_a_model_outside_the_table_needs_its_limit(tmp_path, capsys):
    code = main(["validate", str(REPO / "examples/data/chat_examples.jsonl"), "--target", "vertex-gemini",
                 "--model", "gemini-9-ultra", "--output", str(tmp_path / "out"), IN_MEMORY])
    assert code == 2
    assert "not in ftprep's Vertex AI Gemini table" in capsys.readouterr().err


@pytest.mark.parametrize("options", [
    [], ["--target", "hf", "--tokenizer", "examples/tokenizers/chatml-tiny", "--max-length", "4096"],
    ["--target", "gpt-oss", "--model", "gpt-oss-20b", "--set", "target.counting=harmony"]], ids=["openai", "hf", "gpt-oss"])
def test_the_same_recipe_renders_for_openai_and_the_open_weights_targets(options, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert run("examples/recipes/parquet_chat.yaml", *options, "--output", str(tmp_path / "out"), IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    assert all([m["role"] for m in row["messages"]] == ["system", "user", "assistant"] for row in out["train"])
