"""``metrics.html``: the run's curves and verdicts on one self-contained page (inline SVG,
nothing fetched), every number on it the metrics.json number (``data-key``)."""

from __future__ import annotations

import html
from typing import Any

COLORS = {"train": "#4f6bed", "valid": "#d92d20"}


def _chart(title: str, curves: dict[str, dict[str, list]], epoch_ticks: list[tuple[int, float]]) -> str:
    points = [p for curve in curves.values() for key in ("raw", "smoothed") for p in curve.get(key, ())]
    if not points:
        return f'<p class="muted">No {html.escape(title.lower())} in the files.</p>'
    w, h, left, bottom, top = 900, 260, 60, 40, 16
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points) or 1
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    pad = (y1 - y0) * 0.05 or 0.05
    y0, y1 = y0 - pad, y1 + pad

    def xy(step, value):
        return (left + (w - left - 14) * (step - x0) / max(x1 - x0, 1), h - bottom - (h - bottom - top) * (value - y0) / (y1 - y0))

    parts = [f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{html.escape(title)}">']
    for i in range(5):
        value = y0 + (y1 - y0) * i / 4
        _, y = xy(x0, value)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{w - 14}" y2="{y:.1f}" stroke="#e4e7ec"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.3g}</text>')
    for step, epoch in epoch_ticks:
        x, _ = xy(step, y0)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{h - bottom}" stroke="#c8ccd4" stroke-dasharray="3 3"/>'
                     f'<text x="{x:.1f}" y="{h - bottom + 28}" text-anchor="middle">epoch {epoch:g}</text>')
    for i in range(6):
        step = round(x0 + (x1 - x0) * i / 5)
        x, _ = xy(step, y0)
        parts.append(f'<text x="{x:.1f}" y="{h - bottom + 14}" text-anchor="middle">{step:,}</text>')
    for name, curve in curves.items():
        color = COLORS[name]
        for key, width, opacity in (("raw", 1, 0.35), ("smoothed", 2.5, 1)):
            line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(*p) for p in curve.get(key, ())))
            if line:
                parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="{width}" opacity="{opacity}"/>')
    parts.append(f'<text x="{left + (w - left) / 2:.1f}" y="{h - 2}" text-anchor="middle" class="axis">step</text></svg>')
    legend = " ".join(f'<span style="color:{COLORS[n]}">■ {n} (thin: raw, thick: smoothed)</span>' for n in curves)
    return "".join(parts) + f'<p class="muted">{legend}</p>'


def _cell(path: str, value: Any) -> str:
    text = "—" if value is None else (f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
    return f'<td data-key="{html.escape(path)}">{html.escape(text)}</td>'


def render_metrics(doc: dict) -> str:
    curves = doc["curves"]
    epoch_ticks = [(t["step"], t["epoch"]) for t in doc.get("epoch_ticks", ())]
    rows = []
    for name, verdict in doc["verdicts"].items():
        numbers = "".join(f"<tr><th>{html.escape(k)}</th>{_cell(f'verdicts.{name}.{k}', v)}</tr>"
                          for k, v in verdict.items() if k != "verdict")
        mark = "yes" if verdict["verdict"] else "no"
        rows.append(f'<div class="panel"><h3>{html.escape(name.replace("_", " "))}: '
                    f'<b data-key="verdicts.{name}.verdict">{mark}</b></h3><table>{numbers}</table></div>')
    suggested = doc.get("suggested_epochs")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ftprep metrics</title>
<style>body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #1d2433; }} .muted {{ color: #5b6473; }}
.panel {{ border: 1px solid #e4e7ec; border-radius: 8px; padding: 8px 14px; margin: 10px 0; }}
th {{ text-align: left; font-weight: 500; padding-right: 18px; }} svg text {{ font: 11px system-ui, sans-serif; fill: #39414f; }}
svg text.axis {{ font-weight: 600; }}</style></head><body>
<h1>Training metrics</h1>
<p class="muted">{html.escape(", ".join(doc["inputs"]))} · {html.escape(doc["kind"])} ·
<span data-key="steps">{doc["steps"]:,}</span> steps{'' if doc.get("run_epochs") is None else f' · <span data-key="run_epochs">{doc["run_epochs"]}</span> epochs'}</p>
<h2>Suggested epochs for the next run: <b data-key="suggested_epochs">{'—' if suggested is None else suggested}</b></h2>
<h2>Loss</h2><div class="panel">{_chart("Loss", curves["loss"], epoch_ticks)}</div>
<h2>Token accuracy</h2><div class="panel">{_chart("Token accuracy", curves["accuracy"], epoch_ticks)}</div>
<h2>Verdicts</h2>{"".join(rows) or '<p class="muted">No curves to judge.</p>'}
{'' if not doc["unknown_columns"] else '<p class="muted">Columns not used: ' + html.escape(", ".join(doc["unknown_columns"])) + '</p>'}
{'' if not doc.get("non_finite") else '<p class="muted">NaN or infinite values left out: ' + html.escape(", ".join(f"{k} {v:,}" for k, v in doc["non_finite"].items())) + '</p>'}
</body></html>
"""
