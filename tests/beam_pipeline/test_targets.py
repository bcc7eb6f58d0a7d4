"""The open-weights targets end to end: counts against the libraries that define them
(transformers' apply_chat_template, openai-harmony's renderer), the limit, TRL's rows, the
Parquet output and its dataset card loaded with datasets — all offline."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from beam_pipeline.cli import main
from tests import real_tokenizers
from tests.beam_pipeline.helpers import IN_MEMORY, assert_counts_add_up, read_output, run, write_recipe

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = REPO / "examples" / "tokenizers" / "chatml-tiny"
WORDS = "Open Settings then Security and choose Reset password to follow the e-mail link".split()


def rows(n: int) -> list[dict]:
    return [{"question": f"How do I reset my password, case {i}?",
             "answer": " ".join(WORDS[: 3 + i % len(WORDS)]) * (1 + 3 * (i % 7 == 6)),
             "reasoning": f"The user asks about case {i}; the answer is in Settings."} for i in range(n)]


def chat_recipe(tmp_path: Path, target: dict, **extra) -> str:
    pq.write_table(pa.Table.from_pylist(rows(40)), tmp_path / "qa.parquet")
    return write_recipe(tmp_path, {
        "input": {"paths": [str(tmp_path / "qa.parquet")]},
        "template": {"format": "chat", "system": "You help with Acme accounts.",
                     "messages": [{"role": "user", "content": "{{ question }}"},
                                  {"role": "assistant", "content": "{{ answer }}", **extra.pop("assistant", {})}]},
        "target": target, "split": {"validation_fraction": 0.2}, "output": {"path": str(tmp_path / "out"), **extra.pop("output", {})},
        **extra,
    })


def test_hf_counts_masks_and_limit_equal_transformers_and_the_parquet_loads(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "tokenizer"
    shutil.copytree(TOKENIZER, folder)
    path = chat_recipe(tmp_path, {"kind": "hf", "tokenizer": str(folder), "max_length": 80, "packing": True},
                       output={"format": "parquet"})
    assert run(path, IN_MEMORY) == 0
    out_dir = tmp_path / "out"
    stats = json.loads((out_dir / "stats.json").read_text())
    reference = transformers.AutoTokenizer.from_pretrained(str(folder))

    def encode(messages):
        done = reference.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        return len(done["input_ids"]), sum(done["assistant_masks"])

    loaded = datasets.load_dataset(str(out_dir))  # through the card's configs
    assert sorted(loaded) == ["train", "validation"]
    assert loaded["train"].column_names == ["messages"]
    kept = [encode(row["messages"]) for split in ("train", "validation") for row in loaded[split]]
    assert stats["tokens"]["total"] == sum(n for n, _ in kept)
    assert stats["tokens"]["trained"] == sum(t for _, t in kept)
    assert stats["tokens"]["per_example"]["max"] == max(n for n, _ in kept) <= 80
    assert stats["target"] == {"kind": "hf", "tokenizer": f"hf:{folder}", "max_tokens_per_example": 80,
                               "trained_from": "the model's chat template: its {% generation %} blocks, else each "
                                               "assistant turn's span"}
    assert len(loaded["train"]) == stats["records"]["train"] and len(loaded["validation"]) == stats["records"]["validation"]
    # The over-long rows are rejected, and by transformers' count they are over the limit too.
    rejected = [json.loads(line) for f in (out_dir / "rejected").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert rejected and {r["errors"][0]["code"] for r in rejected} == {"too_many_tokens"}
    assert all(encode(r["example"]["messages"])[0] > 80 for r in rejected)
    assert stats["records"]["rejected"] == len(rejected)
    # The packing estimate covers the train split; OpenAI's job request is not written.
    assert stats["packing"]["examples"] == stats["records"]["train"]
    assert 0 < stats["packing"]["sequences"] <= stats["records"]["train"]
    assert not (out_dir / "finetune_job.json").exists()
    assert_counts_add_up(read_output(out_dir))
    card = (out_dir / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert [entry["split"] for entry in header["configs"][0]["data_files"]] == ["train", "validation"]
    assert header["dataset_info"]["features"] == loaded["train"].features._to_yaml_list()
    assert f"| train | {stats['records']['train']:,} |" in card
    # The parquet builder on the folder, as the issue asks: the same splits and rows.
    by_folder = datasets.load_dataset("parquet", data_dir=str(out_dir))
    assert {split: len(by_folder[split]) for split in by_folder} == {split: len(loaded[split]) for split in loaded}


@functools.lru_cache(maxsize=1)
def harmony_encoding():
    from transforms.targets.harmony_tokens import load_harmony_encoding

    return load_harmony_encoding()


def harmony_reference(example: dict, effort: str) -> tuple[int, int]:
    """The example's training tokens and assistant tokens, built with openai-harmony directly
    (its analysis dropping off: in 0.0.8 it drops the last turn's reasoning, openai/harmony#96)."""
    from openai_harmony import (
        Conversation, DeveloperContent, Message, ReasoningEffort, RenderConversationConfig, Role, SystemContent,
    )

    encoding = harmony_encoding()
    system, user, assistant = example["messages"]
    analysis = Message.from_role_and_content(Role.ASSISTANT, assistant["thinking"]).with_channel("analysis")
    final = Message.from_role_and_content(Role.ASSISTANT, assistant["content"]).with_channel("final")
    conversation = Conversation.from_messages([
        Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_reasoning_effort(ReasoningEffort[effort.upper()])),
        Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new().with_instructions(system["content"])),
        Message.from_role_and_content(Role.USER, user["content"]), analysis, final])
    total = len(encoding.render_conversation_for_training(conversation, RenderConversationConfig(auto_drop_analysis=False)))
    return total, len(encoding.render(analysis)) + len(encoding.render(final))


def test_gpt_oss_counts_equal_openai_harmony_with_the_reasoning(tmp_path):
    pytest.importorskip("openai_harmony")
    path = chat_recipe(tmp_path, {"kind": "gpt-oss", "counting": "harmony", "max_length": 130, "reasoning_effort": "low"},
                       assistant={"thinking": "{{ reasoning }}"}, model="gpt-oss-20b")
    assert run(path, IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    kept = out["train"] + out["validation"]
    assert all(example["messages"][2]["thinking"].startswith("The user asks") for example in kept)
    expected = [harmony_reference(example, "low") for example in kept]
    stats = out["stats"]
    assert stats["tokens"]["total"] == sum(n for n, _ in expected)
    assert stats["tokens"]["trained"] == sum(t for _, t in expected)
    assert stats["model"]["name"] == "gpt-oss-20b" and stats["tokens"]["encoding"] == "o200k_harmony"
    assert {r["errors"][0]["code"] for r in out["rejected"]} == {"too_many_tokens"}
    assert all(harmony_reference(r["example"], "low")[0] > 130 for r in out["rejected"])


def test_hf_preference_rows_are_trls_prompt_chosen_rejected(tmp_path):
    datasets = pytest.importorskip("datasets")
    table = [{"question": f"Where is invoice {i}?", "good": "Account, then Billing.", "bad": "No idea."} for i in range(12)]
    pq.write_table(pa.Table.from_pylist(table), tmp_path / "prefs.parquet")
    path = write_recipe(tmp_path, {
        "input": {"paths": [str(tmp_path / "prefs.parquet")]},
        "template": {"format": "preference", "messages": [{"role": "user", "content": "{{ question }}"}],
                     "preferred": "{{ good }}", "non_preferred": "{{ bad }}"},
        "target": {"kind": "hf", "tokenizer": str(TOKENIZER), "max_length": 512},
        "split": {"validation_fraction": 0.0}, "output": {"path": str(tmp_path / "out")},
    })
    assert run(path, IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    assert out["train"][0] == {"prompt": [{"role": "user", "content": "Where is invoice 0?"}],
                               "chosen": [{"role": "assistant", "content": "Account, then Billing."}],
                               "rejected": [{"role": "assistant", "content": "No idea."}]}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "DPOTrainer" in card and "validation" not in card.split("---")[1]
    loaded = datasets.load_dataset(str(tmp_path / "out"))
    assert list(loaded) == ["train"] and loaded["train"].column_names == ["prompt", "chosen", "rejected"]


def test_worker_processes_count_as_the_launcher_does(tmp_path, monkeypatch):
    """The default local run (a process per core) loads the pinned tokenizer files in each worker,
    from a recipe that names them relative to the working directory."""
    monkeypatch.chdir(REPO)
    path = chat_recipe(tmp_path, {"kind": "hf", "tokenizer": "examples/tokenizers/chatml-tiny", "max_length": 80},
                       output={"format": "parquet"})
    assert run(path, "--output", str(tmp_path / "workers")) == 0
    assert run(path, "--output", str(tmp_path / "memory"), IN_MEMORY) == 0
    workers, memory = read_output(tmp_path / "workers"), read_output(tmp_path / "memory")
    assert workers["train"] == memory["train"] and workers["stats"]["tokens"] == memory["stats"]["tokens"]
    for split in ("train", "validation"):
        assert (tmp_path / "workers" / split / "part-00000-of-00001.parquet").read_bytes() == (
            tmp_path / "memory" / split / "part-00000-of-00001.parquet").read_bytes()


def test_tokenizer_files_that_cannot_be_found_stop_the_run_before_it_starts(tmp_path, capsys):
    path = chat_recipe(tmp_path, {"kind": "hf", "tokenizer": str(tmp_path / "nowhere"), "max_length": 100})
    assert main(["run", path, IN_MEMORY]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "target hf: cannot find the tokenizer files" in message and "tokenizer.json" in message
    assert not (tmp_path / "out" / "stats.json").exists()


def test_a_template_the_model_refuses_rejects_the_example_with_its_code(tmp_path):
    # The example template knows system, user and assistant only: a tool turn is refused.
    table = [{"conversation": json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])},
             {"conversation": json.dumps([{"role": "user", "content": "hi"},
                                          {"role": "assistant", "content": None, "tool_calls": [
                                              {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                                          {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                                          {"role": "assistant", "content": "done"}])}]
    pq.write_table(pa.Table.from_pylist(table), tmp_path / "c.parquet")
    path = write_recipe(tmp_path, {
        "input": {"paths": [str(tmp_path / "c.parquet")]},
        "template": {"format": "chat", "messages_column": "conversation"},
        "target": {"kind": "hf", "tokenizer": str(TOKENIZER), "max_length": 512},
        "split": {"validation_fraction": 0.0}, "output": {"path": str(tmp_path / "out")},
    })
    assert run(path, IN_MEMORY) == 0
    out = read_output(tmp_path / "out")
    (rejected,) = out["rejected"]
    assert rejected["errors"][0]["code"] == "chat_template_error"
    assert "this template has no role tool" in rejected["errors"][0]["message"]
    assert rejected["source"]["row"] == 1


def test_openai_weights_are_not_written_for_trainers_and_are_counted_as_not_applied(tmp_path):
    lines = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!", "weight": 0},
                           {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye!", "weight": 1}]},
             {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["validate", str(tmp_path / "a.jsonl"), "--target", "hf", "--tokenizer", str(TOKENIZER),
                 "--max-length", "512", "--output", str(tmp_path / "out"), IN_MEMORY]) == 0
    out = read_output(tmp_path / "out")
    assert out["stats"]["warnings"] == {"missing_system_message": 2, "weight_not_applied": 1}
    assert all("weight" not in m for example in out["train"] for m in example["messages"])
    assert out["stats"]["target"]["kind"] == "hf" and not (tmp_path / "out" / "finetune_job.json").exists()


def test_preview_shows_the_reasoning_and_the_targets_counts(tmp_path, capsys):
    # gpt-oss by default: the model's chat template, with its (real) tokenizer files.
    path = chat_recipe(tmp_path, {"kind": "gpt-oss", "max_length": 4096, "tokenizer": str(real_tokenizers.folder("gptoss"))},
                       assistant={"thinking": "{{ reasoning }}"})
    assert main(["preview", path, "--rows", "1"]) == 0
    printed = capsys.readouterr().out
    assert "(thinking)" in printed and "The user asks about case 0" in printed
    assert "trained" in printed and "; " not in printed.split("tokens:")[1].splitlines()[0]
