"""``ftprep metrics`` on generated runs of known shape: each verdict, the suggested epochs,
the page's numbers against metrics.json, and bad input as one clear line."""

import csv
import json
import math
import re
from pathlib import Path

import pytest

from beam_pipeline.cli import main
from tests.beam_pipeline.helpers import screenshot

REPO = Path(__file__).resolve().parents[2]

STEPS, EPOCHS = 90, 3  # 30 steps an epoch


def write_csv(path: Path, train, valid=None):
    with path.open("w", newline="") as f:
        columns = ["step", "train_loss", "train_accuracy"] + (["valid_loss", "valid_mean_token_accuracy"] if valid else [])
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for step in range(1, STEPS + 1):
            row = {"step": step, "train_loss": round(train(step), 5), "train_accuracy": round(1 - train(step) / 4, 5)}
            if valid:
                row.update(valid_loss=round(valid(step), 5), valid_mean_token_accuracy=round(1 - valid(step) / 4, 5))
            writer.writerow(row)
    return str(path)


def data_dir(tmp_path: Path, validation: int = 400) -> str:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "stats.json").write_text(json.dumps({"estimate": {"n_epochs": EPOCHS}, "records": {"validation": validation}}))
    (folder / "finetune_job.json").write_text(json.dumps({"model": "gpt-4o-mini-2024-07-18", "training_file": "<id>",
                                                          "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}}))
    return str(folder)


def metrics(tmp_path, *files, data=None):
    args = ["metrics", *files, "--output", str(tmp_path / "out")] + (["--data", data] if data else [])
    assert main(args) == 0
    return json.loads((tmp_path / "out" / "metrics.json").read_text())


def test_a_clean_run_is_neither_over_nor_underfit_and_keeps_its_epochs(tmp_path):
    path = write_csv(tmp_path / "clean.csv", lambda s: 0.3 + 2 * math.exp(-s / 12), lambda s: 0.5 + 2 * math.exp(-s / 12))
    doc = metrics(tmp_path, path, data=data_dir(tmp_path))
    verdicts = doc["verdicts"]
    assert not verdicts["overfitting"]["verdict"] and not verdicts["underfitting"]["verdict"]
    assert not verdicts["noisy_validation"]["verdict"]
    assert doc["suggested_epochs"] == EPOCHS and doc["run_epochs"] == EPOCHS


def test_an_overfitting_run_is_caught_and_the_epoch_of_the_minimum_suggested(tmp_path):
    # Validation falls to its minimum at step 40 (epoch 1.33), then rises; training keeps falling.
    path = write_csv(tmp_path / "over.csv", lambda s: 2.5 * math.exp(-s / 20) + 0.1,
                     lambda s: 0.6 + 0.0004 * (s - 40) ** 2)
    data = data_dir(tmp_path)
    doc = metrics(tmp_path, path, data=data)
    over = doc["verdicts"]["overfitting"]
    assert over["verdict"] and 36 <= over["min_step"] <= 50 and over["rise"] > 0.05 and over["gap_final"] > 0
    assert doc["suggested_epochs"] == 2
    job = json.loads((tmp_path / "out" / "finetune_job.suggested.json").read_text())
    assert job["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2 and job["model"] == "gpt-4o-mini-2024-07-18"


def test_an_underfitting_run_asks_for_another_epoch(tmp_path):
    path = write_csv(tmp_path / "under.csv", lambda s: 3 - s / 40, lambda s: 3.2 - s / 45)
    doc = metrics(tmp_path, path, data=data_dir(tmp_path))
    assert doc["verdicts"]["underfitting"]["verdict"] and not doc["verdicts"]["overfitting"]["verdict"]
    assert doc["suggested_epochs"] == EPOCHS + 1


def test_a_run_without_validation_metrics_is_judged_on_training_alone(tmp_path):
    path = write_csv(tmp_path / "train_only.csv", lambda s: 3 - s / 40)
    doc = metrics(tmp_path, path, data=data_dir(tmp_path, validation=20))
    assert set(doc["verdicts"]) == {"underfitting"} and doc["verdicts"]["underfitting"]["verdict"]
    assert doc["curves"]["loss"].keys() == {"train"}


def test_few_validation_examples_make_the_validation_curve_noisy(tmp_path):
    path = write_csv(tmp_path / "clean.csv", lambda s: 0.3 + 2 * math.exp(-s / 12), lambda s: 0.5 + 2 * math.exp(-s / 12))
    doc = metrics(tmp_path, path, data=data_dir(tmp_path, validation=12))
    assert doc["verdicts"]["noisy_validation"] == {"verdict": True, "validation_examples": 12,
                                                   "relative_noise": doc["verdicts"]["noisy_validation"]["relative_noise"]}


def test_trainer_state_json_with_its_own_epochs(tmp_path):
    history = [{"step": s, "epoch": s / 30, "loss": 2.5 * math.exp(-s / 20) + 0.1, "mean_token_accuracy": 0.5 + s / 300}
               for s in range(5, STEPS + 1, 5)]
    history += [{"step": s, "epoch": s / 30, "eval_loss": 0.6 + 0.0004 * (s - 40) ** 2} for s in range(10, STEPS + 1, 10)]
    history.append({"step": STEPS, "train_runtime": 12.5})
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history, "global_step": STEPS}))
    doc = metrics(tmp_path, str(tmp_path / "trainer_state.json"))
    assert doc["kind"] == "trainer_state.json" and doc["run_epochs"] == 3
    assert doc["verdicts"]["overfitting"]["verdict"] and doc["suggested_epochs"] == 2
    assert "train_runtime" in doc["unknown_columns"]


def test_every_number_on_the_page_is_the_json_number(tmp_path):
    path = write_csv(tmp_path / "over.csv", lambda s: 2.5 * math.exp(-s / 20) + 0.1, lambda s: 0.6 + 0.0004 * (s - 40) ** 2)
    doc = metrics(tmp_path, path, data=data_dir(tmp_path))
    page = (tmp_path / "out" / "metrics.html").read_text()
    shown = dict(re.findall(r'data-key="([^"]+)"[^>]*>([^<]*)<', page))
    assert {"suggested_epochs", "steps", "verdicts.overfitting.verdict", "verdicts.overfitting.min_step"} <= set(shown)
    for key, text in shown.items():
        value = doc
        for part in key.split("."):
            value = value[part]
        expected = ("yes" if value else "no") if isinstance(value, bool) else "—" if value is None else (
            f"{value:,}" if isinstance(value, int) else str(value))
        assert text == expected, key
    assert page.count("<polyline") == 8 and "http" not in page.split("<body>")[1]


@pytest.mark.parametrize("content, message", [
    (None, "no such file"), ("", "the file is empty"), ("step,speed\n1,2\n", "no known metric column"),
    ("step,train_loss\n1,abc\n", "train_loss: 'abc' is not a number"), ("a,b\n1,2\n", "no step column"),
    ('{"foo": 1}', "no log_history list")])
def test_bad_metric_files_are_one_clear_line(tmp_path, capsys, content, message):
    path = tmp_path / ("m.json" if content and content.startswith("{") else "m.csv")
    if content is not None:
        path.write_text(content)
    assert main(["metrics", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ftprep: error:") and message in err[0]


def test_the_example_metrics_file_and_its_page_in_chromium(tmp_path, capsys):
    doc = metrics(tmp_path, str(REPO / "examples" / "metrics" / "step_metrics.csv"))
    assert doc["kind"] == "openai results" and doc["verdicts"]["overfitting"]["verdict"]
    assert "overfitting        YES" in capsys.readouterr().out
    data = screenshot(tmp_path / "out" / "metrics.html", tmp_path)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_metric_files_are_read_through_fsspec(tmp_path):
    import fsspec

    local = write_csv(tmp_path / "over.csv", lambda s: 2.5 * math.exp(-s / 20) + 0.1, lambda s: 0.6 + 0.0004 * (s - 40) ** 2)
    with fsspec.open("memory://runs/over.csv", "w") as f:
        f.write(Path(local).read_text())
    doc = metrics(tmp_path, "memory://runs/over.csv")
    assert doc["inputs"] == ["memory://runs/over.csv"] and doc["verdicts"]["overfitting"]["verdict"]


def test_epochs_given_on_the_command_line_when_nothing_else_says(tmp_path):
    path = write_csv(tmp_path / "over.csv", lambda s: 2.5 * math.exp(-s / 20) + 0.1, lambda s: 0.6 + 0.0004 * (s - 40) ** 2)
    assert main(["metrics", path, "--epochs", "3", "--output", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["run_epochs"] == 3 and doc["suggested_epochs"] == 2
    assert json.loads((tmp_path / "out" / "finetune_job.suggested.json").read_text()) == {"hyperparameters": {"n_epochs": 2}}


def test_an_overfit_run_with_its_minimum_in_the_last_epoch_is_told_to_stop_one_earlier(tmp_path, capsys):
    assert main(["metrics", str(REPO / "examples/metrics/step_metrics.csv"), "--epochs", "3",
                 "--output", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert 2 < doc["verdicts"]["overfitting"]["min_epoch"] < 3 and doc["suggested_epochs"] == 2
    assert "next run    2 epochs suggested (this run: 3)" in capsys.readouterr().out


# Issue 24: work follows the file, not the values in it.
@pytest.mark.parametrize("entry, message", [
    ({"step": 10, "epoch": 1e15, "loss": 1.0}, "epoch: 1000000000000000.0 is out of range"),
    ({"step": -1, "loss": 1.0}, "step: -1 is out of range"),
    ({"step": 1.5, "loss": 1.0}, "step: 1.5 is out of range"),
    ({"step": 10, "epoch": -2, "loss": 1.0}, "epoch: -2 is out of range"),
    ({"step": "inf", "loss": 1.0}, "step: 'inf' is out of range"),
])
def test_steps_and_epochs_out_of_range_are_one_line(tmp_path, capsys, entry, message):
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": [entry]}))
    assert main(["metrics", str(tmp_path / "trainer_state.json"), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_nan_and_infinite_values_are_counted_and_shown(tmp_path, capsys):
    path = tmp_path / "m.csv"
    path.write_text("step,train_loss,valid_loss\n1,2.0,2.1\n2,nan,2.0\n3,1.5,inf\n4,1.2,1.9\n5,-inf,1.8\n")
    doc = metrics(tmp_path, str(path))
    assert doc["non_finite"] == {"train_loss": 2, "valid_loss": 1}
    assert "NaN or infinite values: train_loss 2, valid_loss 1" in capsys.readouterr().out
    assert "NaN or infinite values left out" in (tmp_path / "out" / "metrics.html").read_text()


def test_many_epochs_give_a_bounded_number_of_marks(tmp_path):
    history = [{"step": s, "epoch": s / 10, "loss": 2.0 - s / 10_000} for s in range(1, 10_001)]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    doc = metrics(tmp_path, str(tmp_path / "trainer_state.json"))
    assert doc["run_epochs"] == 1_000 and len(doc["epoch_ticks"]) == 20
    assert doc["epoch_ticks"][0] == {"step": 500, "epoch": 50}


@pytest.mark.parametrize("epochs", ["0", "-1", "10001", "1000000000000000"])
def test_epochs_on_the_command_line_are_bounded(tmp_path, capsys, epochs):
    path = write_csv(tmp_path / "clean.csv", lambda s: 0.3 + 2 * math.exp(-s / 12))
    assert main(["metrics", path, "--output", str(tmp_path / "out"), "--epochs", epochs]) == 2
    assert "--epochs must be from 1 to 10,000" in capsys.readouterr().err
