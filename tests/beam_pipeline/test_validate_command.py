"""``ftprep validate`` on JSONL already in a fine-tuning format."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tiktoken

from beam_pipeline.cli import EXIT_REJECTED, main
from tests.beam_pipeline.helpers import IN_MEMORY, assert_counts_add_up, read_output
from transforms.encodings import load_encoding
from transforms.tokens import TokenCounter

SYSTEM = {"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."}


def toy_chat():
    """The shape of the cookbook's toy_chat_fine_tuning.jsonl: sarcastic Q&A, one example missing a
    system message, one missing a user message, one with a very long repeated assistant message."""
    qa = [
        ("What's the capital of France?", "Paris, as if everyone doesn't know that already."),
        ("Who wrote 'Romeo and Juliet'?", "Oh, just some guy named William Shakespeare. Ever heard of him?"),
        ("How far is the Moon from Earth?", "Around 384,400 kilometers. Give or take a few, like that really matters."),
        ("What's the boiling point of water?", "100 degrees Celsius at sea level. Groundbreaking, I know."),
        ("Who painted the Mona Lisa?", "Leonardo da Vinci. Maybe you've seen it on a tote bag."),
    ]
    examples = [{"messages": [SYSTEM, {"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in qa]
    examples.append({"messages": [{"role": "user", "content": "What's 2 + 2?"}, {"role": "assistant", "content": "4. Shocking."}]})
    examples.append({"messages": [SYSTEM, {"role": "assistant", "content": "You didn't even ask anything."}]})
    examples.append({"messages": [SYSTEM, {"role": "user", "content": "Say something long."},
                                  {"role": "assistant", "content": "Sure, " + "blah " * 5000}]})
    return examples


def notebook_method(examples, encoding, limit):
    """The data-prep notebook's arithmetic, written out independently: per-example counts,
    default epochs and billed tokens."""
    lengths = []
    for example in examples:
        n = 3
        for message in example["messages"]:
            n += 3 + sum(len(encoding.encode(v)) for v in message.values()) + ("name" in message)
        lengths.append(n)
    n_train = len(examples)
    epochs = 3
    if n_train * 3 < 100:
        epochs = min(25, 100 // n_train)
    elif n_train * 3 > 25000:
        epochs = max(1, 25000 // n_train)
    billed_per_epoch = sum(min(limit, n) for n in lengths)
    return lengths, epochs, billed_per_epoch * epochs


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def validate(*argv):
    return main(["validate", *argv, IN_MEMORY])


def test_counts_epochs_and_billing_agree_with_the_notebook(tmp_path, capsys):
    examples = toy_chat()
    path = write_jsonl(tmp_path / "toy_chat_fine_tuning.jsonl", examples)
    # The notebook's toy file has 8 examples, under OpenAI's minimum of 10: valid lines, a broken file limit.
    assert validate(path, "--model", "gpt-3.5-turbo-0125", "--output", str(tmp_path / "out")) == EXIT_REJECTED
    printed = capsys.readouterr().out
    assert "File limit broken: OpenAI: min_train_examples is 10, the run has 8" in printed
    out = read_output(tmp_path / "out")
    assert_counts_add_up(out)
    stats = out["stats"]
    assert stats["target"]["checks"] == [{"rule": "min_train_examples", "limit": 10, "actual": 8, "ok": False}]

    encoding = load_encoding("cl100k_base")
    lengths, epochs, billed = notebook_method(examples, encoding, 16_385)
    assert [TokenCounter(encoding, "cl100k_base").chat(e).total for e in examples] == lengths
    per_example = stats["tokens"]["per_example"]
    assert (per_example["min"], per_example["max"], stats["tokens"]["total"]) == (min(lengths), max(lengths), sum(lengths))
    assert stats["estimate"]["n_epochs"] == epochs == 12
    assert stats["estimate"]["billed_tokens"] == billed
    assert stats["warnings"] == {"missing_system_message": 1, "missing_user_message": 1}
    assert stats["records"] == {"read": 8, "train": 8, "validation": 0, "rejected": 0, "dropped": {}}
    assert out["train"] and sorted(map(json.dumps, out["train"])) == sorted(map(json.dumps, examples))

    # The notebook's num_assistant_tokens_from_messages: assistant content alone, per example.
    content = [sum(len(encoding.encode(m["content"])) for m in e["messages"] if m["role"] == "assistant") for e in examples]
    assert [TokenCounter(encoding, "cl100k_base").chat(e).assistant_content for e in examples] == content
    assistant = stats["tokens"]["assistant_content_per_example"]
    assert (assistant["min"], assistant["max"], stats["tokens"]["assistant_content"]) == (min(content), max(content), sum(content))
    # by_role.assistant is the same messages with each one's overhead (3) and role (1 token).
    assert stats["tokens"]["by_role"]["assistant"] == sum(content) + 4 * len(examples)

    assert f"Assistant content tokens per example:  min {min(content)}," in printed
    assert "Assistant message tokens per example:" in printed
    assert "No errors found" in printed
    assert "missing_system_message: 1" in printed
    assert "By default, you'll train for 12 epochs on this dataset" in printed
    assert f"By default, you'll be charged for ~{billed:,} tokens" in printed
    job = json.loads((tmp_path / "out" / "finetune_job.json").read_text())
    assert job["model"] == "gpt-3.5-turbo-0125" and job["method"]["supervised"]["hyperparameters"] == {"n_epochs": 12}
    assert "validation_file" not in job


def test_notebook_counts_per_example_for_o200k(tmp_path):
    examples = toy_chat() * 2  # 16: OpenAI takes no file of fewer than 10 * 2  # 16: OpenAI takes no file of fewer than 10
    path = write_jsonl(tmp_path / "toy.jsonl", examples)
    assert validate(path, "--model", "gpt-4o-mini", "--output", str(tmp_path / "out")) == 0
    stats = read_output(tmp_path / "out")["stats"]
    lengths, _, billed = notebook_method(examples, tiktoken.get_encoding("o200k_base"), 65_536)
    assert stats["tokens"]["encoding"] == "o200k_base"
    assert stats["tokens"]["total"] == sum(lengths) and stats["estimate"]["billed_tokens"] == billed


def test_rejections_exit_3_unless_allowed(tmp_path, capsys):
    lines = [json.dumps(e) for e in toy_chat()[:3]] + ["not json", json.dumps([1, 2]), json.dumps({"messages": [SYSTEM]})]
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n")
    args = [str(tmp_path / "mixed.jsonl"), "--model", "gpt-4o-mini-2024-07-18"]
    assert validate(*args, "--output", str(tmp_path / "a")) == 3
    printed = capsys.readouterr().out
    assert "invalid_json: 1" in printed and "data_type: 1" in printed and "example_missing_assistant_message: 1" in printed
    rejected = read_output(tmp_path / "a")["rejected"]
    assert sorted(r["source"]["row"] for r in rejected) == [3, 4, 5]
    assert validate(*args, "--output", str(tmp_path / "b"), "--allow-rejected") == 0


def test_over_limit_rejected_or_kept_as_truncated(tmp_path):
    path = write_jsonl(tmp_path / "long.jsonl", toy_chat() * 2)  # 16: OpenAI takes no file of fewer than 10
    custom = ["--model", "gpt-3.5-turbo-0613"]  # 4,096 tokens per example: the long one (twice) is over
    assert validate(path, *custom, "--output", str(tmp_path / "a")) == 3
    assert read_output(tmp_path / "a")["stats"]["rejections"] == {"too_many_tokens": 2}
    assert validate(path, *custom, "--over-limit", "truncate", "--output", str(tmp_path / "b")) == 0
    stats = read_output(tmp_path / "b")["stats"]
    assert stats["warnings"]["truncated_to_limit"] == 2
    assert stats["estimate"]["billed_tokens_per_epoch"] < stats["tokens"]["train"]


def test_preference_legacy_names_are_written_with_current_names(tmp_path):
    pair = {"input": {"messages": [{"role": "user", "content": "Capital of France?"}]},
            "preferred_completion": [{"role": "assistant", "content": "Paris."}],
            "non_preferred_completion": [{"role": "assistant", "content": "Lyon."}]}
    path = write_jsonl(tmp_path / "dpo.jsonl", [pair] * 10)
    assert validate(path, "--model", "gpt-4.1-mini", "--output", str(tmp_path / "out"), "--price-per-million-tokens", "25") == 0
    out = read_output(tmp_path / "out")
    assert out["stats"]["format"] == "preference"
    assert all(set(e) == {"input", "preferred_output", "non_preferred_output"} for e in out["train"])
    job = json.loads((tmp_path / "out" / "finetune_job.json").read_text())
    assert job["method"]["type"] == "dpo" and "cost" in out["stats"]["estimate"]


def test_completion_format_is_detected_and_split_on_request(tmp_path):
    rows = [{"prompt": f"q{i} ->", "completion": f" a{i}"} for i in range(40)]
    path = write_jsonl(tmp_path / "c.jsonl", rows)
    assert validate(path, "--model", "babbage-002", "--output", str(tmp_path / "out"), "--validation-fraction", "0.25") == 0
    out = read_output(tmp_path / "out")
    assert out["stats"]["format"] == "completion" and out["stats"]["records"]["validation"] > 0
    assert json.loads((tmp_path / "out" / "finetune_job.json").read_text())["validation_file"].startswith("<file id of validation/")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: pq.write_table(pa.table({"a": [1]}), p), "is not JSONL: it starts like a Parquet file"),
        (lambda p: p.write_text("question,answer\nq,a\n"), "is not JSONL: its first line starts with 'question,answer'"),
        (lambda p: p.write_text('{"text": "no format"}\n'), "cannot tell the example format"),
        (lambda p: p.write_text(json.dumps([{"messages": []}], indent=2)), "one pretty-printed JSON document"),
    ],
)
def test_files_that_are_not_examples_are_named(tmp_path, capsys, make, message):
    make(tmp_path / "data.jsonl")
    assert validate(str(tmp_path / "data.jsonl"), "--model", "gpt-4o-mini", "--output", str(tmp_path / "out")) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("first", ['{"messages": [{"role": "user", "content": "cut off mid-upl', '["an", "array"]',
                                   '{"note": "exported by tool X"}'])
def test_the_format_comes_from_the_first_lines_that_are_examples(tmp_path, first):
    path = tmp_path / "data.jsonl"
    path.write_text(first + "\n" + "".join(json.dumps(e) + "\n" for e in toy_chat()))
    assert validate(str(path), "--model", "gpt-4o-mini", "--output", str(tmp_path / "out")) == 3  # the first line: rejected
    out = read_output(tmp_path / "out")
    assert out["stats"]["format"] == "chat" and out["stats"]["records"]["train"] == len(toy_chat())
    (rejected,) = out["rejected"]
    assert rejected["source"]["row"] == 0


def test_unknown_model_is_a_usage_error(tmp_path, capsys):
    path = write_jsonl(tmp_path / "x.jsonl", toy_chat())
    assert validate(path, "--model", "gpt-9", "--output", str(tmp_path / "out")) == 2
    assert "unknown model 'gpt-9'" in capsys.readouterr().err


def test_an_alias_is_pinned_to_its_snapshot_and_the_shutdown_is_stated(tmp_path, capsys):
    path = write_jsonl(tmp_path / "toy.jsonl", toy_chat() * 2)
    assert validate(path, "--model", "gpt-4o-mini", "--output", str(tmp_path / "out")) == 0
    assert json.loads((tmp_path / "out" / "finetune_job.json").read_text())["model"] == "gpt-4o-mini-2024-07-18"
    notice = read_output(tmp_path / "out")["stats"]["target"].get("retirement")
    if notice is not None:  # from 90 days before 2027-01-06 (the suite's date decides)
        assert notice["date"] == "2027-01-06" and "deprecations" in notice["source"]
        assert "Warning: OpenAI creates no new fine-tuning jobs" in capsys.readouterr().out
