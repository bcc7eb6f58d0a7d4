"""output.tokens: the tokens and masks the trainer trains on, written once — equal, example by
example, to what transformers' apply_chat_template gives with TRL's training template (the masks
of SFTTrainer's assistant_only_loss), on real models' tokenizer files; the labels form as Axolotl
and LLaMA-Factory read it."""

from __future__ import annotations

import json

import pytest

from beam_pipeline.cli import main
from schemas.formats import trainer_row
from tests.beam_pipeline.helpers import IN_MEMORY, assert_counts_add_up, read_output, write_recipe
from tests.real_tokenizers import folder

transformers = pytest.importorskip("transformers")

WEATHER = [{"type": "function", "function": {"name": "weather", "description": "Weather.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]
CORPUS = [
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"}]},
    {"messages": [{"role": "user", "content": "Where is order 7?"},
                  {"role": "assistant", "content": "It shipped on Monday. ünïcödé 東京\n\nTwo lines."}]},
    {"messages": [{"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
                      "name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
                  {"role": "assistant", "content": "It is sunny."}], "tools": WEATHER},
]
# family -> the recipe's target (gpt-oss by its own kind: the model's chat template is its default)
TARGETS = {"qwen2_5": "hf", "llama3_1": "hf", "gemma3": "hf", "gptoss": "gpt-oss"}


def run_tokens(tmp_path, family: str, rows: list[dict], fmt: str, form: str, **output) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = write_recipe(tmp_path, {
        "input": {"paths": [str(tmp_path / "in.jsonl")], "examples": fmt},
        "target": {"kind": TARGETS[family], "tokenizer": str(folder(family)), "max_length": 8192},
        "split": {"validation_fraction": 0}, "limits": {"fail_fast_rows": 0},
        "output": {"path": str(tmp_path / "out"), "format": "parquet", "tokens": form, **output}})
    assert main(["run", recipe, IN_MEMORY]) == 0
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    return out


@pytest.mark.parametrize("family", sorted(TARGETS))
def test_tokens_and_masks_equal_trl_s_for_every_example(family, tmp_path):
    out = run_tokens(tmp_path, family, CORPUS, "chat", "trl")
    source_training = _training_template(family)
    reference = transformers.AutoTokenizer.from_pretrained(str(folder(family)))
    kwargs = {"reasoning_effort": "medium"} if family == "gptoss" else {}
    written_rows = iter(out["train"])
    for index, example in enumerate(CORPUS):
        row = trainer_row(example, "chat")
        try:
            expected = reference.apply_chat_template(
                row["messages"], tools=row.get("tools"), chat_template=source_training, tokenize=True,
                return_dict=True, return_assistant_tokens_mask=True, **kwargs)
        except Exception:  # noqa: BLE001 - the template refuses it (Gemma-3 has no tool role): so does ftprep
            assert [r["source"]["row"] for r in out["rejected"]] == [index]
            assert out["rejected"][0]["errors"][0]["code"] == "chat_template_error"
            continue
        written = next(written_rows)
        assert written["input_ids"] == list(expected["input_ids"]), family
        assert written["assistant_masks"] == list(expected["assistant_masks"]), family
        assert 1 in written["assistant_masks"]  # never silently empty
    # stats.json's trained tokens are the masks' sums
    assert out["stats"]["tokens"]["trained"] == sum(sum(r["assistant_masks"]) for r in out["train"])
    assert out["stats"]["tokens"]["train"] == sum(len(r["input_ids"]) for r in out["train"])


def _training_template(family: str) -> str:
    from transforms.targets.hf_tokens import HfSource

    source = HfSource(str(folder(family)), allow_download=False).check()
    assert source.training_template is not None, f"TRL ships no training template for {family}"
    return source.training_template


def test_the_labels_form_is_what_axolotl_and_llama_factory_read(tmp_path):
    datasets = pytest.importorskip("datasets")
    out = run_tokens(tmp_path, "qwen2_5", CORPUS, "chat", "labels")
    trl = run_tokens(tmp_path / "trl", "qwen2_5", CORPUS, "chat", "trl")
    for row, masked in zip(out["train"], trl["train"]):
        assert set(row) == {"input_ids", "attention_mask", "labels"}
        assert row["input_ids"] == masked["input_ids"] and row["attention_mask"] == [1] * len(row["input_ids"])
        assert row["labels"] == [i if m else -100 for i, m in zip(masked["input_ids"], masked["assistant_masks"])]
    loaded = datasets.load_dataset(str(tmp_path / "out"))["train"]
    assert {name: str(feature) for name, feature in loaded.features.items()} == {
        name: "List(Value('int64'))" for name in ("input_ids", "attention_mask", "labels")}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "`labels` (-100 where nothing is trained)" in card


def test_tokenized_jsonl_is_written_and_its_report_shows_the_masks(tmp_path):
    out = run_tokens(tmp_path, "qwen2_5", CORPUS[:2], "chat", "trl", format="jsonl")
    assert [set(row) for row in out["train"]] == [{"input_ids", "assistant_masks"}] * 2
    page = (tmp_path / "out" / "report.html").read_text()
    # Both rows shown token by token (the legend has one box of each kind).
    assert page.count('<span class="tk') == sum(len(row["input_ids"]) for row in out["train"]) + 2
    assert page.count('<span class="tk on">') == sum(sum(row["assistant_masks"]) for row in out["train"]) + 1


def test_completions_are_masked_where_trl_s_completion_starts(tmp_path):
    rows = [{"prompt": "2+2=", "completion": " 4"}, {"prompt": "The capital of France is", "completion": " Paris."}]
    out = run_tokens(tmp_path, "qwen2_5", rows, "completion", "trl")
    reference = transformers.AutoTokenizer.from_pretrained(str(folder("qwen2_5")))
    for example, written in zip(rows, out["train"]):
        prompt = reference(example["prompt"])["input_ids"]
        whole = reference(example["prompt"] + example["completion"])["input_ids"]
        if reference.eos_token_id is not None and whole[-1] != reference.eos_token_id:
            whole = whole + [reference.eos_token_id]
        shared = next((i for i, (a, b) in enumerate(zip(prompt, whole)) if a != b), min(len(prompt), len(whole)))
        assert written == {"input_ids": whole, "completion_mask": [0] * shared + [1] * (len(whole) - shared)}


def test_tokenized_rows_are_refused_where_they_cannot_be_made(tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text(json.dumps(CORPUS[0]) + "\n")
    base = {"input": {"paths": [str(tmp_path / "in.jsonl")], "examples": "chat"}, "output": {
        "path": str(tmp_path / "out"), "tokens": "trl"}}
    for target, said in ((None, "OpenAI does not write tokenized rows"),
                         ({"kind": "gpt-oss", "counting": "harmony"}, "target gpt-oss does not write tokenized rows")):
        doc = {**base, "model": "gpt-4o-mini-2024-07-18"} if target is None else {**base, "target": target}
        assert main(["run", write_recipe(tmp_path, doc), IN_MEMORY]) == 2
        assert said in capsys.readouterr().err
