"""``report.html``: the run's ``stats.json`` for a person, in one self-contained page.

Every number comes from the stats document (the page is rendered from it, in the same step that
writes it); charts are inline SVG; no scripts, fonts or images are fetched. Each figure carries
``data-key="<dotted stats path>"`` so that a test can hold the page to ``stats.json``.
"""

from __future__ import annotations

import html
import json
import math

import jinja2

from beam_pipeline.summary import bills_like_openai
from transforms.units import RECORD_PREVIEW_CHARS

# Our own template, trusted; every value is escaped (autoescape).
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("beam_pipeline.outputs", "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["n"] = lambda value: "—" if value is None else f"{value:,}" if isinstance(value, int) else value
# A token's text with its line breaks and tabs shown, so that a boundary next to one stays visible.
_ENV.filters["visible"] = lambda piece: piece.replace("\n", "\\n").replace("\t", "\\t") or "∅"

PAGE = _ENV.get_template("report.html.j2")


def _bars(items: list[tuple[str, int]], key_prefix: str, color: str, empty: str) -> str:
    """Horizontal bars, largest first, with labels and counts."""
    items = sorted(((k, v) for k, v in items if v), key=lambda kv: (-kv[1], kv[0]))
    if not items:
        return f'<p class="muted">{html.escape(empty)}</p>'
    top, row, label_width, width = max(v for _, v in items), 22, 190, 520
    height = row * len(items) + 4
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{html.escape(key_prefix)}">']
    for i, (name, value) in enumerate(items):
        y = i * row + 2
        bar = max(2.0, (width - label_width - 70) * value / top)
        parts.append(f'<text x="{label_width - 6}" y="{y + 14}" text-anchor="end">{html.escape(name[:28])}</text>'
                     f'<rect x="{label_width}" y="{y + 3}" width="{bar:.1f}" height="{row - 7}" rx="2" fill="{color}"/>'
                     f'<text x="{label_width + bar + 5:.1f}" y="{y + 14}" data-key="{html.escape(key_prefix)}.{html.escape(name)}">'
                     f'{value:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(span: float, ticks: int = 5) -> int:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks over ``span``."""
    raw = max(span / ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    return int(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def _histogram(hist: dict, limit: int) -> tuple[str, str]:
    """Tokens per example: bars over the range the data covers (from the first non-empty bin, not
    from 0), round ticks on both axes with their titles, gridlines, and the limit marked when it
    falls near the data (else a note says how far off it is)."""
    counts, width = hist.get("counts") or [], hist.get("bin_width") or 0
    if not counts or not any(counts):
        return '<p class="muted">No kept examples.</p>', ""
    w, h, left, bottom, top_pad = 1000, 260, 64, 44, 14
    plot_w, plot_h = w - left - 14, h - bottom - top_pad
    first = next(i for i, n in enumerate(counts) if n)
    span_end = len(counts) * width
    show_limit = limit <= span_end * 1.15
    x_end = max(span_end, limit) if show_limit else span_end
    x_step = _nice_step(x_end - first * width)
    x_start = (first * width // x_step) * x_step
    x_end = -(-x_end // x_step) * x_step
    y_step = _nice_step(max(counts), 4)
    y_top = -(-max(counts) // y_step) * y_step

    def x_of(value: float) -> float:
        return left + plot_w * (value - x_start) / max(x_end - x_start, 1)

    def y_of(value: float) -> float:
        return h - bottom - plot_h * value / y_top

    parts = [f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="tokens per example">']
    for value in range(0, y_top + 1, y_step):
        y = y_of(value)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{w - 14}" y2="{y:.1f}" stroke="#e4e7ec"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,}</text>')
    for i, n in enumerate(counts):
        if not n:
            continue
        x0, x1 = x_of(i * width), x_of((i + 1) * width)
        parts.append(f'<rect x="{x0:.1f}" y="{y_of(n):.1f}" width="{max(1.0, x1 - x0 - 1):.1f}" '
                     f'height="{h - bottom - y_of(n):.1f}" fill="#4f6bed">'
                     f'<title>{i * width:,}–{(i + 1) * width - 1:,} tokens: {n:,} examples</title></rect>')
    parts.append(f'<line x1="{left}" y1="{h - bottom}" x2="{w - 14}" y2="{h - bottom}" stroke="#9aa3b2"/>')
    for value in range(x_start, x_end + 1, x_step):
        parts.append(f'<text x="{x_of(value):.1f}" y="{h - bottom + 16}" text-anchor="middle">{value:,}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{h - 6}" text-anchor="middle" class="axis">tokens per example</text>'
                 f'<text transform="translate(14 {top_pad + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
                 f'class="axis">examples</text>')
    if show_limit:
        x = x_of(limit)
        parts.append(f'<line x1="{x:.1f}" y1="{top_pad}" x2="{x:.1f}" y2="{h - bottom}" stroke="#b42318" stroke-dasharray="5 4"/>'
                     f'<text x="{x - 4:.1f}" y="{top_pad + 10}" text-anchor="end" fill="#b42318">limit {limit:,}</text>')
        note = ""
    else:
        note = f"The model's limit, {limit:,} tokens, is {limit / max(span_end, 1):,.0f}× the longest example's bin, off to the right."
    parts.append("</svg>")
    return "".join(parts), note


def _preview(doc: dict) -> str:
    """The rejected record, cut; then the messages its errors name (``focus``), which the cut hides."""
    shown = {k: v for k, v in doc.items() if k not in ("source", "errors", "focus")}
    text = json.dumps(shown, ensure_ascii=False, indent=1)
    if len(text) > RECORD_PREVIEW_CHARS:
        text = text[:RECORD_PREVIEW_CHARS] + f"… [{len(text):,} characters]"
    if doc.get("focus"):
        text += "\n\nwhat the error is about:\n" + json.dumps(doc["focus"], ensure_ascii=False, indent=1)
    return text


def render_report(stats: dict, *, samples: dict[str, list[dict]] | None = None, recipe: str | None = None,
                  title: str = "", masks: list[dict] | None = None) -> str:
    """The page for ``stats`` (a ``stats.json`` document); ``samples``: code -> rejected documents;
    ``masks``: the first tokenized rows written, token by token (``finalize.mask_samples``)."""
    records, tokens, estimate = stats["records"], stats["tokens"], stats["estimate"]
    dropped = sum(records["dropped"].values())
    cards = [
        {"key": "records.read", "label": "records read", "value": records["read"], "tone": ""},
        {"key": "records.train", "label": "train examples", "value": records["train"], "tone": "good"},
        {"key": "records.validation", "label": "validation examples", "value": records["validation"], "tone": "good"},
        {"key": "records.rejected", "label": "rejected", "value": records["rejected"], "tone": "bad" if records["rejected"] else ""},
        {"key": "records.dropped", "label": "dropped (filters, duplicates)", "value": dropped, "tone": ""},
        {"key": "tokens.total", "label": "tokens kept", "value": tokens["total"], "tone": ""},
    ]
    packing = stats.get("packing")
    openai = bills_like_openai(stats)
    if openai:
        cards += [
            {"key": "estimate.n_epochs", "label": "epochs (estimate)", "value": estimate.get("n_epochs"), "tone": ""},
            {"key": "estimate.billed_tokens", "label": "billed training tokens", "value": estimate.get("billed_tokens"), "tone": ""},
        ]
        panel = ("Training estimate", [(f"estimate.{k}", label, estimate[k]) for k, label in (
            ("train_examples", "train examples"), ("n_epochs", "epochs"), ("billed_tokens_per_epoch", "billed tokens per epoch"),
            ("billed_tokens", "billed tokens"), ("cost", "cost (USD)")) if k in estimate])
    else:
        cards.append({"key": "tokens.trained", "label": "trained tokens", "value": tokens["trained"], "tone": ""})
        if packing:
            cards.append({"key": "packing.sequences", "label": "packed sequences (train)", "value": packing["sequences"], "tone": ""})
        panel = (f"Packing into {packing['max_length']:,}-token sequences" if packing else "Training data", [
            (f"packing.{k}", label, packing[k]) for k, label in (
                ("examples", "train examples"), ("tokens", "train tokens"), ("sequences", "sequences (best-fit decreasing)"),
                ("examples_per_sequence", "examples per sequence"), ("fill", "fill"),
                ("padding_share_packed", "padding share, packed"),
                ("padding_share_unpacked", "padding share, one example per sequence"))
        ] if packing else [("records.train", "train examples", records["train"]), ("tokens.train", "train tokens", tokens["train"])])
    histogram, limit_note = _histogram(tokens.get("histogram") or {}, stats["model"]["max_tokens_per_example"])
    samples = samples or {}
    sample_rows = [(code, [{**doc, "preview": _preview(doc)} for doc in docs]) for code, docs in sorted(samples.items())]
    return PAGE.render(
        title=title, stats=stats, cards=cards, histogram=histogram, limit_note=limit_note,
        per_example=tokens["per_example"], panel=panel,
        roles=_bars(list(tokens["by_role"].items()), "tokens.by_role", "#7a5af8",
                    "No tokens." if openai else "This target counts whole rendered sequences, not roles."),
        rejections=_bars(list(stats["rejections"].items()), "rejections", "#d92d20", "Nothing was rejected."),
        drops=_bars(list(records["dropped"].items()), "records.dropped", "#f79009", "Nothing was dropped."),
        pii=_bars(list(stats["pii"].items()), "pii", "#0e9384", "No personal data found (or no PII step)."),
        warnings=_bars(list(stats["warnings"].items()), "warnings", "#667085", "No warnings."),
        samples=sample_rows, recipe=recipe, masks=masks or [],
    )
