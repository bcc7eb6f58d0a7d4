"""report.html: every figure equals stats.json, nothing is fetched, and it renders in a browser."""

import html
import re
from pathlib import Path

import pytest

from tests.beam_pipeline.helpers import IN_MEMORY, read_output, run, screenshot

REPO = Path(__file__).resolve().parents[3]


def figures(page: str) -> dict[str, str]:
    return {key: value.strip() for key, value in re.findall(r'data-key="([^"]+)"[^>]*>([^<]*)<', page)}


def lookup(stats: dict, dotted: str):
    node = stats
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    assert run(str(REPO / "examples/recipes/csv_chat.yaml"), "--output", str(out), IN_MEMORY) == 0
    return out


def test_every_figure_on_the_page_is_the_stats_figure(example_run):
    page = (example_run / "report.html").read_text()
    stats = read_output(example_run)["stats"]
    shown = figures(page)
    assert {"records.read", "records.train", "records.validation", "records.rejected", "tokens.total",
            "tokens.per_example.p95", "estimate.billed_tokens", "tokens.trained"} <= set(shown)
    for key, text in shown.items():
        if key == "records.dropped":
            expected = sum(stats["records"]["dropped"].values())
        else:
            expected = lookup(stats, key)
        assert text.replace(",", "") == str(expected), key
    # bars: every rejection code and drop reason with its count
    for code, n in stats["rejections"].items():
        assert shown[f"rejections.{code}"] == f"{n:,}"
    for reason, n in stats["records"]["dropped"].items():
        if n:
            assert shown[f"records.dropped.{reason}"] == f"{n:,}"


def test_an_open_weights_run_shows_its_packing_not_openais_bill(tmp_path):
    out = tmp_path / "out"
    assert run(str(REPO / "examples/recipes/parquet_chat_hf.yaml"), "--output", str(out), IN_MEMORY) == 0
    page = (out / "report.html").read_text()
    stats = read_output(out)["stats"]
    shown = figures(page)
    assert {"packing.sequences", "packing.padding_share_packed", "tokens.trained"} <= set(shown)
    assert not any(key.startswith("estimate.") for key in shown)
    for key, text in shown.items():
        expected = sum(stats["records"]["dropped"].values()) if key == "records.dropped" else lookup(stats, key)
        assert text.replace(",", "") == str(expected), key
    assert "target hf" in page and "counts whole rendered sequences" in page


def test_the_page_is_self_contained_and_shows_samples_and_the_recipe(example_run):
    page = (example_run / "report.html").read_text()
    assert not re.search(r'<script|<link|@import|url\(|src="http|href="http', page)
    assert "<svg" in page and "Tokens per example" in page
    rejected = read_output(example_run)["rejected"]
    first = min(rejected, key=lambda r: (r["source"]["file"], r["source"]["row"]))
    assert f"row {first['source']['row']}:" in page and first["errors"][0]["message"].replace('"', "&#34;") in page
    assert "template:" in page and "{{ subject }}" in page  # the recipe, escaped where it needs to be
    assert "sk-" not in page, "rejected samples are the redacted ones"


def test_validate_writes_a_report_too(tmp_path):
    from beam_pipeline.cli import main

    lines = tmp_path / "x.jsonl"
    lines.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
                     '{"messages": []}\n')
    assert main(["validate", str(lines), "--model", "gpt-4o-mini-2024-07-18", "--output", str(tmp_path / "out"),
                 "--allow-rejected", IN_MEMORY]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert figures(page)["records.rejected"] == "1" and "missing_messages_list" in page


def test_the_page_renders_in_headless_chromium(example_run, tmp_path):
    data = screenshot(example_run / "report.html", tmp_path)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_the_histogram_fits_the_data_and_titles_its_axes():
    import re

    from beam_pipeline.outputs.report import _histogram

    svg, note = _histogram({"bin_width": 50, "counts": [0] * 6 + [3, 9, 4, 1]}, 550)
    x_ticks = [int(v.replace(",", "")) for v in re.findall(r'text-anchor="middle">([\d,]+)</text>', svg)]
    assert x_ticks[0] >= 200 and x_ticks[-1] >= 550  # from the data's first bin, through the limit
    assert "tokens per example</text>" in svg and ">examples</text>" in svg
    assert "limit 550" in svg and note == ""
    y_ticks = [int(v) for v in re.findall(r'text-anchor="end">(\d+)</text>', svg)]
    assert y_ticks[0] == 0 and y_ticks[-1] >= 9
    _, far = _histogram({"bin_width": 50, "counts": [1, 2]}, 65_536)
    assert "off to the right" in far


def test_a_long_rejected_record_still_shows_the_message_its_error_names():
    from beam_pipeline.outputs.report import _preview
    from transforms.units import small_rejected

    example = {"messages": [{"role": "system", "content": "You are helpful. " * 40},
                            {"role": "user", "content": "Question? " * 20}, {"role": "assistant", "content": ""}]}
    doc = {"source": {"file": "f", "row": 3}, "errors": [{"code": "missing_content", "message": "messages[2].content is empty"}],
           "record": {"q": "x"}, "example": example}
    shown = _preview(small_rejected(doc))
    assert "what the error is about" in shown
    assert '"messages[2]": {\n  "role": "assistant",\n  "content": ""' in shown


def test_the_recipe_is_shown_as_written_with_the_command_lines_changes(example_run):
    page = html.unescape((example_run / "report.html").read_text())
    written = (REPO / "examples/recipes/csv_chat.yaml").read_text()
    assert written.rstrip("\n") in page  # comments, quoting and order as the author wrote them
    assert "# changed on the command line, in this order:\n# - output.provenance: true" in page
