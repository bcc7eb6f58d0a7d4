"""The registry resolves a recipe's target: its model and limit, and what it takes (formats,
outputs, reasoning) — checked when the recipe is loaded, before any input is read."""

import pytest
from pydantic import ValidationError

from schemas.recipe import Recipe
from tests.schemas.test_recipe import CHAT, with_
from transforms.targets.registry import TargetError, target_for


def resolved(doc):
    return target_for(Recipe.model_validate(doc))


def test_the_default_model_spec_is_the_tables():
    assert resolved(CHAT).model.max_tokens_per_example == 65_536
    completion = with_(CHAT, model="babbage-002", template={"format": "completion", "prompt": "{{ q }}", "completion": "{{ a }}"})
    assert resolved(completion).model.encoding == "cl100k_base"


def test_unknown_model_fails_validation():
    with pytest.raises(TargetError, match="unknown model 'gpt-5-super'"):
        resolved(with_(CHAT, model="gpt-5-super"))


def test_custom_model_for_other_platforms():
    target = resolved(
        with_(CHAT, model={"name": "my-llama", "encoding": "cl100k_base", "max_tokens_per_example": 4096})
    )
    assert target.model.max_tokens_per_example == 4096
    with pytest.raises(TargetError, match="unknown encoding"):
        resolved(with_(CHAT, model={"name": "x", "encoding": "nope", "max_tokens_per_example": 1}))
    with pytest.raises(TargetError, match="unknown model 'my-llama'"):
        resolved(with_(CHAT, model={"name": "my-llama", "encoding": "cl100k_base"}))


def test_known_model_with_a_lower_limit():
    target = resolved(with_(CHAT, model={"name": "gpt-4o-mini", "max_tokens_per_example": 8000}))
    assert (target.model.encoding, target.model.max_tokens_per_example) == ("o200k_base", 8000)


def test_the_target_defaults_to_openai_and_needs_a_model_there():
    assert resolved(CHAT).kind == "openai"
    no_model = {k: v for k, v in CHAT.items() if k != "model"}
    with pytest.raises(TargetError, match="give the model to fine-tune"):
        resolved(no_model)


def test_open_weights_targets_take_their_limit_and_tokenizer_from_the_target():
    no_model = {k: v for k, v in CHAT.items() if k != "model"}
    hf = resolved({**no_model, "target": {"kind": "hf", "tokenizer": "Qwen/Qwen2.5-0.5B", "max_length": 4096}})
    assert (hf.model.name, hf.model.max_tokens_per_example) == ("Qwen/Qwen2.5-0.5B", 4096)
    oss = resolved({**no_model, "model": "gpt-oss-120b", "target": "gpt-oss"})
    # gpt-oss counts what TRL tokenizes, the model's chat template (its tokenizer files), by default.
    assert (oss.model.name, oss.model.encoding, oss.model.max_tokens_per_example) == (
        "gpt-oss-120b", "hf:openai/gpt-oss-20b", 131_072)
    harmony = resolved({**no_model, "target": {"kind": "gpt-oss", "counting": "harmony"}})
    assert (harmony.model.name, harmony.model.encoding) == ("gpt-oss", "o200k_harmony")
    with pytest.raises(ValidationError, match="max_length"):
        resolved({**no_model, "target": {"kind": "hf", "tokenizer": "x/y"}})
    with pytest.raises(TargetError, match="give model as a name only"):
        resolved({**no_model, "target": "gpt-oss",
                               "model": {"name": "m", "encoding": "o200k_base", "max_tokens_per_example": 9}})
    with pytest.raises(ValidationError, match="sha256"):
        resolved({**no_model, "target": {"kind": "hf", "tokenizer": "x/y", "max_length": 8,
                                                      "sha256": {"tokenizer.json": "not-a-digest"}}})


def test_parquet_output_and_thinking_are_for_the_open_weights_targets():
    with pytest.raises(TargetError, match="OpenAI takes JSONL"):
        resolved(with_(CHAT, output={"path": "out", "format": "parquet"}))
    thinking = {"messages": [{"role": "user", "content": "{{ q }}"},
                             {"role": "assistant", "content": "{{ a }}", "thinking": "{{ why }}"}]}
    with pytest.raises(TargetError, match="thinking has no place in OpenAI's format"):
        resolved(with_(CHAT, template=thinking))
    target = resolved(with_(CHAT, template=thinking, target="gpt-oss", output={"path": "o", "format": "parquet"}))
    assert target.output_formats == ("jsonl", "parquet")
    with pytest.raises(ValidationError, match="only assistant messages have thinking"):
        resolved(with_(CHAT, target="gpt-oss", template={
            "messages": [{"role": "user", "content": "{{ q }}", "thinking": "x"}]}))


def test_a_new_provider_is_its_module_and_its_registry_line(tmp_path, monkeypatch):
    """What a new hosted provider takes: a Target subclass (as its module would hold) and its
    line in TARGETS; the recipe, the CLI, the pipeline and the outputs need nothing else."""
    import json

    from beam_pipeline.cli import main
    from tests.beam_pipeline.helpers import IN_MEMORY, read_output, write_recipe
    from transforms.targets.base import Counting, DatasetLimits, HostedModel, Provider, TargetRuleError
    from transforms.targets.hosted import HostedTarget
    from transforms.targets.registry import TARGETS

    def to_row(example, fmt):
        if any(m["role"] == "system" for m in example["messages"]):
            raise TargetRuleError("acme_system", "Acme takes no system message")
        return {"turns": [[m["role"], m["content"]] for m in example["messages"]]}

    class Acme(HostedTarget):
        kind = "acme"
        provider = Provider(title="Acme", sources={"format": "https://acme.example/ft"}, formats=("chat",),
                            models={"acme-1": HostedModel("acme-1", 4096, "https://acme.example/models")},
                            limits=DatasetLimits(min_train_examples=1, source="https://acme.example/ft"),
                            counting=Counting("estimate", chars_per_token=4.0, source="Acme's 4 characters a token"),
                            schema_file="")
        convert = staticmethod(to_row)
        job_body = staticmethod(lambda **fields: {"acme_model": fields["model"], "files": fields["train_files"]})

    monkeypatch.setitem(TARGETS, "acme", Acme)
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(4)]
    rows.append({"messages": [{"role": "system", "content": "s"}, *rows[0]["messages"]]})
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = write_recipe(tmp_path, {"input": {"paths": [str(tmp_path / "in.jsonl")], "examples": "chat"},
                                     "model": "acme-1", "target": "acme", "split": {"validation_fraction": 0},
                                     "output": {"path": str(tmp_path / "out")}})
    assert main(["run", recipe, IN_MEMORY]) == 0
    out = read_output(tmp_path / "out")
    assert sorted(row["turns"][0][1] for row in out["train"]) == ["q0", "q1", "q2", "q3"]
    assert out["stats"]["rejections"] == {"acme_system": 1}
    assert out["stats"]["target"]["title"] == "Acme" and out["stats"]["tokens"]["estimated_examples"] == 4
    job = json.loads((tmp_path / "out" / "finetune_job.json").read_text())
    assert job["acme_model"] == "acme-1" and job["files"][0].startswith("train/")
