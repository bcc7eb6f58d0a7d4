"""``ftprep preview``: the first rows of a recipe's input through the same per-record stages as
the pipeline (cleaning, PII, template, validation, token counting, filters), in this process,
without starting a pipeline. The fast loop for writing a template."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

from beam_pipeline.pipeline import JobPlan, record_stages
from schemas.formats import trained_bits
from schemas.records import KEPT, REJECTED, Dropped, FailedFile, Item, Rejected, Rejection, TokenCount
from transforms.readers.paths import infer_format
from transforms.readers.registry import plan_file, read_unit


@dataclass
class Outcome:
    """What became of one row: its example (as far as it got), tokens and warnings, and its
    rejection or the reason it was dropped (neither: kept)."""

    source: str
    example: dict | None = None
    tokens: TokenCount | None = None
    warnings: tuple[str, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    dropped: str | None = None
    # The tokenized row (output.tokens): input_ids and the mask the trainer trains on.
    tokenized: dict | None = None


def first_records(plan: JobPlan, n: int) -> Iterator[Item | Rejected | FailedFile]:
    """The first ``n`` rows of the inputs in file order, read as the pipeline reads them."""
    recipe = plan.recipe
    count = 0
    for url in plan.files:
        units = plan_file(url, recipe.input.format or infer_format(url), plan.columns, recipe.input.csv, plan.bad_files)
        for unit in units:
            for record in read_unit(unit, plan.columns, recipe.input.csv, recipe.limits.max_field_chars):
                yield record
                if isinstance(record, FailedFile):
                    break
                count += 1
                if count >= n:
                    return


class Previewer:
    """Runs records through the pipeline's per-record DoFns (built and set up once)."""

    def __init__(self, plan: JobPlan):
        self._dofns = [stage.dofn for _, stage in record_stages(plan)]
        for dofn in self._dofns:
            dofn.setup()

    def run(self, item: Item) -> Outcome:
        outcome = Outcome(f"{item.source.file} row {item.source.row}")
        for dofn in self._dofns:
            kept, other = [], []
            for output in dofn.process([item]):
                tag = getattr(output, "tag", KEPT)
                (kept if tag == KEPT else other).append((tag, getattr(output, "value", output)))
            if kept:
                item = kept[0][1][0]
                outcome.example, outcome.tokens, outcome.warnings = item.example, item.tokens, item.warnings
                if item.target_row is not None and "input_ids" in item.target_row:
                    outcome.tokenized = item.target_row
                continue
            for tag, values in other:
                for value in values:
                    if tag == REJECTED:
                        outcome.rejected = tuple(value.errors)
                        outcome.example = value.example if value.example is not None else outcome.example
                    elif isinstance(value, Dropped):
                        outcome.dropped = value.reason
            break
        return outcome


def preview(plan: JobPlan, n: int) -> list[Outcome | Rejected | FailedFile]:
    previewer = Previewer(plan)
    return [previewer.run(r) if isinstance(r, Item) else r for r in first_records(plan, n)]


def _message_lines(message: dict) -> list[str]:
    label = message.get("role", "?") + ("" if message.get("weight", 1) else " (w=0)")
    content = message.get("content")
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)
    if message.get("tool_calls"):
        content = (content if content != "null" else "") + " tool_calls=" + json.dumps(message["tool_calls"], ensure_ascii=False)
    text = content.splitlines() or [""]
    lines = [f"   {label if i == 0 else '':<16}│ {line}" for i, line in enumerate(text)]
    thinking = message.get("thinking") or message.get("reasoning_content")
    if isinstance(thinking, str):  # the open-weights targets: shown before the answer, as rendered
        lines = [f"   {'  (thinking)' if i == 0 else '':<16}│ {line}" for i, line in enumerate(thinking.splitlines())] + lines
    return lines


def _example_lines(example) -> list[str]:
    """Messages as ``role │ text`` lines (the text as the model will see it); anything else as JSON."""
    if isinstance(example, dict) and isinstance(example.get("messages"), list):
        lines = [line for m in example["messages"] if isinstance(m, dict) for line in _message_lines(m)]
        rest = {k: v for k, v in example.items() if k != "messages"}
        return lines + (["   " + json.dumps(rest, ensure_ascii=False)] if rest else [])
    if isinstance(example, dict) and "preferred_output" in example:
        lines = _example_lines(example.get("input"))
        for key, label in (("preferred_output", "preferred"), ("non_preferred_output", "non-preferred")):
            for m in example.get(key) or []:
                lines += _message_lines({**m, "role": label}) if isinstance(m, dict) else []
        return lines
    if isinstance(example, dict) and set(example) == {"prompt", "completion"}:
        return [line for key in ("prompt", "completion") for line in _message_lines({"role": key, "content": example[key]})]
    return ["   " + line for line in json.dumps(example, indent=2, ensure_ascii=False).splitlines()]


def token_pieces(plan: JobPlan):
    """``ids -> text of each token`` for the run's tokenizer, where the rows are tokenized; else None."""
    if not getattr(plan.tokens, "tokens", None):
        return None
    return plan.tokens.pieces()  # the counter the preview's stages loaded


def mask_view(pieces: list[str], mask: list[int]) -> str:
    """Tokens separated by ``|``, each run of trained tokens inside ``⟦…⟧``; line breaks shown as
    ``\\n`` so that a token boundary next to one stays visible."""
    parts, trained = [], False
    for piece, bit in zip(pieces, mask):
        if bit and not trained:
            parts.append("⟦")
        elif trained and not bit:
            parts.append("⟧")
        elif parts:
            parts.append("|")
        trained = bool(bit)
        parts.append(piece.replace("\n", "\\n"))
    return "".join(parts) + ("⟧" if trained else "")


def report_lines(results: list, fmt: str, pieces=None) -> list[str]:
    """What ``ftprep preview`` prints: each row's example, tokens, warnings and fate; with
    ``pieces`` (``token_pieces``), each tokenized example's tokens with the trained ones marked."""
    lines, kept = [], 0
    for result in results:
        if isinstance(result, FailedFile):
            lines += [f"── {result.path}: cannot be read: {result.error}", ""]
            continue
        if isinstance(result, Rejected):  # rejected while reading
            reasons = "; ".join(f"{e.code}: {e.message}" for e in result.errors)
            lines += [f"── {result.source.file} row {result.source.row}: REJECTED {reasons}", ""]
            continue
        head = f"── {result.source}"
        if result.rejected:
            head += ": REJECTED " + "; ".join(f"{e.code}: {e.message}" for e in result.rejected)
        elif result.dropped:
            head += f": DROPPED ({result.dropped})"
        else:
            head += ": kept"
            kept += 1
        lines.append(head)
        if result.example is not None:
            lines += _example_lines(result.example)
        if result.tokens is not None:
            t = result.tokens
            roles = ", ".join(f"{role} {n}" for role, n in t.by_role)
            lines.append(f"   tokens: {t.total} total, {t.trained} trained" + (f"; {roles}" if roles else "")
                         + (" (estimated)" if t.estimated else ""))
        if pieces is not None and result.tokenized is not None:
            ids = result.tokenized["input_ids"]
            lines.append(f"   mask ({sum(trained_bits(result.tokenized))} of {len(ids)} tokens trained, ⟦…⟧): "
                         + mask_view(pieces(ids), trained_bits(result.tokenized)))
        if result.warnings:
            lines.append(f"   warnings: {', '.join(result.warnings)}")
        lines.append("")
    lines.append(f"{kept} of {len(results)} row(s) would be kept ({fmt}); dedup and the split are not previewed.")
    return lines
