"""Human summaries of a finished run, read from its stats.json."""

from __future__ import annotations

from transforms.targets.registry import target_type


def _distribution(name: str, d: dict) -> str:
    if not d or not d.get("count"):
        return f"{name:<38} none"
    return f"{name:<38} min {d['min']}, p50 {d['p50']}, mean {d['mean']}, p95 {d['p95']}, max {d['max']}"


def _codes(counts: dict) -> str:
    return ", ".join(f"{code} {n}" for code, n in counts.items() if n) or "none"


def bills_like_openai(stats: dict) -> bool:
    """The run's target bills as OpenAI does (its estimate applies); a run from before targets: OpenAI."""
    return target_type(stats.get("target", {}).get("kind")).openai_billing


def failed_checks(stats: dict) -> list[str]:
    """A hosted provider's per-file limits the run's files break, one line each."""
    target = stats.get("target", {})
    title = target.get("title") or target_type(target.get("kind")).title
    return [f"{title}: {check['rule']} is {check['limit']:,}, the run has "
            f"{check['actual']:,} ({target.get('limits_source', '')})" for check in target.get("checks", ()) if not check["ok"]]


def retirement_line(stats: dict) -> str | None:
    notice = stats.get("target", {}).get("retirement")
    if not notice:
        return None
    when = "since" if notice["status"] == "retired" else f"in {notice['days_left']} days, on"
    return f"{notice['what'].split(' after')[0]} {when} {notice['date']} ({notice['source']})"


def _training_line(stats: dict) -> str:
    """OpenAI's billing estimate; for the open-weights targets, the packing estimate if asked for."""
    estimate, packing = stats["estimate"], stats.get("packing")
    if bills_like_openai(stats):
        return (f"training    ~{estimate['billed_tokens']:,} billed tokens over {estimate['n_epochs']} epochs"
                + (f", ~${estimate['cost']:,.2f}" if "cost" in estimate else ""))
    if packing and packing["written"]:
        return (f"packed      {packing['examples']:,} train examples into {packing['sequences']:,} rows of at most "
                f"{packing['max_length']:,} tokens ({packing['fill']:.1%} full; one example a row: "
                f"{1 - packing['padding_share_unpacked']:.1%})")
    if packing:
        return (f"packing     {packing['examples']:,} train examples into {packing['sequences']:,} sequences of "
                f"{packing['max_length']:,} tokens ({packing['padding_share_packed']:.1%} padding; "
                f"{packing['padding_share_unpacked']:.1%} unpacked)")
    return f"training    {stats['tokens']['trained']:,} trained tokens (the assistant's) in the kept examples"


def run_summary(stats: dict, output: str, *, elapsed: float | None = None) -> list[str]:
    """The few lines ``ftprep run`` prints to stderr when it is done."""
    records, tokens = stats["records"], stats["tokens"]
    per_example = tokens["per_example"]
    failed = stats["files"]["failed"]
    return [
        f"read        {records['read']:>10,} rows from {len(stats['files']['read'])} file(s)"
        + (f"; {len(failed)} could not be read (skipped: {', '.join(f['path'] for f in failed)})" if failed else ""),
        f"train       {records['train']:>10,} examples  {tokens['train']:>12,} tokens",
        f"validation  {records['validation']:>10,} examples  {tokens['validation']:>12,} tokens",
        f"rejected    {records['rejected']:>10,} ({_codes(stats['rejections'])})",
        f"dropped     {sum(records['dropped'].values()):>10,} ({_codes(records['dropped'])})",
        *_decontamination_lines(stats),
        *_pii_lines(stats),
        f"warnings    {_codes(stats['warnings'])}",
        f"tokens      {tokens['encoding']}; per example p50 {per_example['p50']}, p95 {per_example['p95']}, "
        f"max {per_example['max']} of {stats['model']['max_tokens_per_example']} allowed",
        _training_line(stats),
        *(f"LIMIT       {line}" for line in failed_checks(stats)),
        *([f"WARNING     {retirement_line(stats)}"] if retirement_line(stats) else []),
        f"output      {output} (report.html to read in a browser)",
    ] + ([f"time        {elapsed:,.1f} s, {records['read'] / elapsed:,.0f} rows/s"] if elapsed else [])


def _pii_lines(stats: dict) -> list[str]:
    """Personal data and secrets found, by kind: redacted in the examples kept; a kind the recipe
    rejects counts its rows under rejected (code pii)."""
    if not stats.get("pii"):
        return []
    rejected = stats["rejections"].get("pii", 0)
    return [f"pii         found {_codes(stats['pii'])}; redacted"
            + (f", except in the {rejected:,} row(s) rejected for it" if rejected else "")]


def _decontamination_lines(stats: dict) -> list[str]:
    against = stats.get("dedup_against")
    lines = []
    if against:
        counts = ", ".join(f"{reason} {against[reason]:,}" for reason in ("duplicate_exact", "duplicate_near")
                           if reason in against)
        lines.append(f"against     {counts} of {len(against['references'])} earlier run(s) "
                     f"({', '.join(against['references'])})")
    for name, source in stats.get("sources", {}).items():
        lines.append(f"source      {name}: {source['train']:,} train examples, {source['achieved_share']:.1%} of train "
                     f"(asked {source['requested_share']:.1%}); {source['dropped'].get('downsampled', 0):,} downsampled "
                     f"of {source['read']:,} read")
    sets = stats.get("decontamination", {}).get("sets", {})
    return lines + [f"evals       {name}: {found['dropped']:,} dropped as contaminated ({found['items_checked']:,} items "
            f"checked, {found['items_too_short']:,} too short to check)" for name, found in sets.items()]


def validate_summary(stats: dict, output: str) -> list[str]:
    """What ``ftprep validate`` prints: the cookbook data-prep notebook's report, and more."""
    records, tokens, estimate = stats["records"], stats["tokens"], stats["estimate"]
    limit = stats["model"]["max_tokens_per_example"]
    kept = records["train"] + records["validation"]
    lines = [
        f"Examples: {records['read']:,} read from {len(stats['files']['read'])} file(s) as {stats['format']}; "
        f"{kept:,} valid, {records['rejected']:,} rejected",
    ]
    for failed in stats["files"]["failed"]:
        lines.append(f"Skipped a file that could not be read: {failed['path']}: {failed['error']}")
    if stats["rejections"]:
        lines.append("Errors found (see rejected/ for each line, its file, row and message):")
        lines.extend(f"  {code}: {n:,}" for code, n in stats["rejections"].items())
    else:
        lines.append("No errors found")
    if stats["warnings"]:
        lines.append("Warnings (examples kept):")
        lines.extend(f"  {code}: {n:,}" for code, n in stats["warnings"].items())
    lines += [
        _distribution("Messages per example:", stats["messages_per_example"]),
        _distribution("Total tokens per example:", tokens["per_example"]),
        # The cookbook's "assistant tokens" (content only), then the same messages with their overhead.
        *([_distribution("Assistant content tokens per example:", tokens["assistant_content_per_example"])]
          if tokens.get("assistant_content") else []),
        _distribution("Assistant message tokens per example:", tokens["by_role_per_example"].get("assistant", {})),
        _distribution("Trained tokens per example:", tokens["trained_per_example"]),
        f"Token limit: {limit:,} per example for {stats['model']['name']} ({tokens['encoding']})",
    ]
    if tokens["estimated_examples"]:
        counting = stats.get("target", {}).get("counting", {})
        why = (counting["method"] if counting and not counting.get("exact")
               else "tools, tool calls, images, pairs")
        lines.append(f"{tokens['estimated_examples']:,} example(s) include estimated parts ({why})")
    lines += [f"File limit broken: {line}" for line in failed_checks(stats)]
    if retirement_line(stats):
        lines.append(f"Warning: {retirement_line(stats)}")
    if not bills_like_openai(stats):
        label, _, text = _training_line(stats).partition(" ")
        return lines + [f"{label.capitalize()}: {text.strip()}", f"Output: {output}"]
    lines += [
        f"Dataset has ~{estimate['billed_tokens_per_epoch']:,} tokens that will be charged for per epoch",
        f"By default, you'll train for {estimate['n_epochs']} epochs on this dataset"
        if estimate["n_epochs_from"] == "default"
        else f"You'll train for {estimate['n_epochs']} epochs (from the recipe)",
        f"By default, you'll be charged for ~{estimate['billed_tokens']:,} tokens"
        + (f" (~${estimate['cost']:,.2f})" if "cost" in estimate else ""),
        f"Output: {output}",
    ]
    return lines
