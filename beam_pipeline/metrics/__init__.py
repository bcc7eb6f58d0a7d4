"""``ftprep metrics``: a training run's loss and accuracy as curves, verdicts and a suggestion
for the next run's epochs (``reading``: the files; ``verdicts``: the judging; ``page``: the HTML)."""

from __future__ import annotations

import json
from typing import Any

import fsspec

from beam_pipeline.metrics.page import render_metrics
from beam_pipeline.metrics.reading import MetricsError, read_run
from beam_pipeline.metrics.verdicts import epoch_of, judge, smooth
from schemas.layout import JOB_FILE, STATS_FILE
from transforms.files import join, write_bytes

METRICS_JSON, METRICS_HTML, SUGGESTED_JOB = "metrics.json", "metrics.html", "finetune_job.suggested.json"


def _load_json(url: str) -> dict | None:
    try:
        with fsspec.open(url, "rt", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise MetricsError(f"{url}: cannot be read: {type(error).__name__}: {error}") from None


def metrics_document(urls: list[str], *, data: str | None = None,
                     epochs: int | None = None) -> tuple[dict[str, Any], dict | None]:
    """The metrics.json document for the files at ``urls`` (``data``: the ftprep output that made
    the run's data), and that output's job request when it has one."""
    run = read_run(urls)
    stats = _load_json(join(data, STATS_FILE)) if data else None
    if data and stats is None:
        raise MetricsError(f"--data {data}: no {STATS_FILE} there (give the output folder of the ftprep run)")
    if epochs is not None:  # the user's word for the run's epochs wins over the data's estimate
        stats = {**(stats or {}), "estimate": {**(stats or {}).get("estimate", {}), "n_epochs": epochs}}
    judged = judge(run, stats)
    steps_per_epoch = judged["steps_per_epoch"]
    epoch = epoch_of(run, steps_per_epoch)
    curves = {}
    for group, names in (("loss", ("train_loss", "valid_loss")), ("accuracy", ("train_accuracy", "valid_accuracy"))):
        curves[group] = {}
        for name in names:
            points = sorted(run.series[name].items())
            if points:
                curves[group][name.split("_")[0]] = {"raw": points, "smoothed": [[s, round(v, 6)] for s, v in smooth(points)]}
    last = judged["steps"]
    doc = {"inputs": run.sources, "kind": run.kind, "data": data, "steps": last, **judged,
           "epoch_ticks": epoch_ticks(run, judged["run_epochs"], steps_per_epoch, last),
           "unknown_columns": sorted(run.unknown_columns), "non_finite": dict(sorted(run.non_finite.items())),
           "curves": curves,
           "final_epoch": None if epoch(last) is None else round(epoch(last), 3)}
    return doc, (_load_json(join(data, JOB_FILE)) if data else None)


# Epoch marks on a chart: at most this many (every k-th epoch on a long run).
MAX_TICKS = 20


def epoch_ticks(run, run_epochs: int | None, steps_per_epoch: float | None, last: int) -> list[dict]:
    """The step where each marked epoch ends: from steps per epoch, else the first step the file
    says reached it (one pass over the file's epochs)."""
    if not run_epochs:
        return []
    every = -(-run_epochs // MAX_TICKS)
    marks = range(every, run_epochs + 1, every)
    if steps_per_epoch:
        found = {n: round(n * steps_per_epoch) for n in marks}
    else:
        found, pending = {}, iter(marks)
        n = next(pending, None)
        for step in sorted(run.epochs):
            while n is not None and run.epochs[step] >= n:
                found[n] = step
                n = next(pending, None)
    return [{"step": step, "epoch": n} for n, step in found.items() if step <= last]


def write_metrics(urls: list[str], *, output: str, data: str | None = None, epochs: int | None = None) -> dict[str, Any]:
    doc, job = metrics_document(urls, data=data, epochs=epochs)
    write_bytes(join(output, METRICS_JSON), json.dumps(doc, indent=1).encode() + b"\n")
    write_bytes(join(output, METRICS_HTML), render_metrics(doc).encode())
    if doc["suggested_epochs"] is not None:
        suggested = dict(job) if job else {"hyperparameters": {}}
        if job and "method" in job:  # OpenAI's body: method.<type>.hyperparameters.n_epochs
            method = json.loads(json.dumps(job["method"]))
            method[method["type"]].setdefault("hyperparameters", {})["n_epochs"] = doc["suggested_epochs"]
            suggested["method"] = method
        else:
            suggested.setdefault("hyperparameters", {})["n_epochs"] = doc["suggested_epochs"]
        write_bytes(join(output, SUGGESTED_JOB), json.dumps(suggested, indent=2).encode() + b"\n")
    return doc


def metrics_lines(doc: dict) -> list[str]:
    """What ``ftprep metrics`` prints."""
    lines = [f"read        {doc['steps']:,} steps from {len(doc['inputs'])} file(s) ({doc['kind']})"]
    for name, verdict in doc["verdicts"].items():
        numbers = ", ".join(f"{k} {v}" for k, v in verdict.items() if k != "verdict" and v is not None)
        lines.append(f"{name.replace('_', ' '):<18} {'YES' if verdict['verdict'] else 'no ':<4} {numbers}")
    if doc["unknown_columns"]:
        lines.append(f"not used    {', '.join(doc['unknown_columns'])}")
    if doc["non_finite"]:
        counts = ", ".join(f"{name} {n:,}" for name, n in doc["non_finite"].items())
        lines.append(f"left out    NaN or infinite values: {counts}")
    lines.append(_next_run_line(doc))
    return lines


def _next_run_line(doc: dict) -> str:
    """The epochs suggested, or why none are and what would let them be."""
    if doc["suggested_epochs"] is not None:
        this_run = f" (this run: {doc['run_epochs']})" if doc.get("run_epochs") else ""
        return f"next run    {doc['suggested_epochs']} epochs suggested{this_run}"
    if not doc.get("run_epochs"):
        why = ("this run's epochs are unknown: add --epochs N (the epochs it trained for) or --data OUTPUT_DIR "
               "(the ftprep output it trained on)")
    elif "overfitting" not in doc["verdicts"]:
        why = "the metrics have no validation loss to find the best epoch by"
    else:
        why = "the validation loss's minimum falls outside the run's epochs"
    return f"next run    no epochs suggested: {why}"


__all__ = ["MetricsError", "metrics_document", "write_metrics", "metrics_lines"]
