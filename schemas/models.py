"""The model table: which tokenizer a fine-tunable model uses and its per-example limit.

Owned by the project rather than taken from ``tiktoken.encoding_for_model`` because
tiktoken maps fine-tuned names (``ft:gpt-4.1-mini-...``) to the wrong encoding and
raises on names newer than the installed release.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    encoding: str
    max_tokens_per_example: int


@dataclass(frozen=True)
class EncodingFile:
    """Where tiktoken publishes an encoding's BPE ranks, and the sha256 it publishes for them."""

    url: str
    sha256: str


# Published next to each encoding's constructor in tiktoken_ext/openai_public.py.
ENCODING_FILES: dict[str, EncodingFile] = {
    "cl100k_base": EncodingFile(
        url="https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": EncodingFile(
        url="https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# Model families by name prefix, longest prefix first when looked up. The o200k/cl100k split
# follows tiktoken's own MODEL_PREFIX_TO_ENCODING for these families.
ENCODING_BY_PREFIX: dict[str, str] = {
    "gpt-4o": "o200k_base",
    "gpt-4.1": "o200k_base",
    "gpt-3.5-turbo": "cl100k_base",
    "babbage-002": "cl100k_base",
    "davinci-002": "cl100k_base",
}

# Maximum tokens in one training example (the fine-tuning limit, not the inference context).
# Sources: OpenAI's fine-tuning guide, "Token limits" ("gpt-4o-mini-2024-07-18 and
# gpt-4o-2024-08-06: 65,536 tokens per training example"; gpt-4.1 family likewise), the
# Azure OpenAI fine-tuning model table ("Training example context length: 65,536"), and for
# gpt-3.5-turbo-0125/1106 the model's 16,385-token context (gpt-3.5-turbo-0613: 4,096).
# babbage-002/davinci-002: their 16,384-token context (legacy completion models).
MAX_TOKENS_PER_EXAMPLE: dict[str, int] = {
    "gpt-4o-2024-08-06": 65_536,
    "gpt-4o-mini-2024-07-18": 65_536,
    "gpt-4.1-2025-04-14": 65_536,
    "gpt-4.1-mini-2025-04-14": 65_536,
    "gpt-4.1-nano-2025-04-14": 65_536,
    "gpt-3.5-turbo-0125": 16_385,
    "gpt-3.5-turbo-1106": 16_385,
    "gpt-3.5-turbo-0613": 4_096,
    "babbage-002": 16_384,
    "davinci-002": 16_384,
}

# Undated names the API accepts for fine-tuning, and the snapshot each one means.
ALIASES: dict[str, str] = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}


class UnknownModelError(ValueError):
    pass


def base_model_name(name: str) -> str:
    """The snapshot behind a name: ``ft:gpt-4o-mini-2024-07-18:org::abc`` and ``gpt-4o-mini``
    both mean ``gpt-4o-mini-2024-07-18``."""
    if name.startswith("ft:"):
        name = name.split(":")[1]
    return ALIASES.get(name, name)


def encoding_for(name: str) -> str | None:
    base = base_model_name(name)
    for prefix in sorted(ENCODING_BY_PREFIX, key=len, reverse=True):
        if base.startswith(prefix):
            return ENCODING_BY_PREFIX[prefix]
    return None


def lookup_model(name: str, *, encoding: str | None = None, max_tokens_per_example: int | None = None) -> ModelSpec:
    """The model's encoding and limit; either may be overridden, and both must be for an unknown model."""
    base = base_model_name(name)
    encoding = encoding or encoding_for(base)
    limit = max_tokens_per_example or MAX_TOKENS_PER_EXAMPLE.get(base)
    if encoding is None or limit is None:
        names = sorted({*MAX_TOKENS_PER_EXAMPLE, *ALIASES})
        close = difflib.get_close_matches(base, names, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}{hint}; known models: {', '.join(names)} "
            "(for another model give model as {name, encoding, max_tokens_per_example})"
        )
    if encoding not in ENCODING_FILES:
        raise UnknownModelError(f"unknown encoding {encoding!r}; known: {', '.join(sorted(ENCODING_FILES))}")
    return ModelSpec(name=name, encoding=encoding, max_tokens_per_example=limit)


def is_openai_model(name: str) -> bool:
    """``name`` is one of OpenAI's models in the table (an alias or dated snapshot): left in a
    recipe whose target was switched, it names no model of the new target."""
    return base_model_name(name) in MAX_TOKENS_PER_EXAMPLE or name in ALIASES


def snapshot_of(name: str) -> str:
    """The dated snapshot a job should pin: an alias (``gpt-4o-mini``) resolved, any other name kept."""
    return ALIASES.get(name, name)


@dataclass(frozen=True)
class Retirement:
    date: str  # ISO date
    what: str
    source: str


# OpenAI's deprecations page, May 2026 entry: self-serve fine-tuning winds down; organisations
# that never fine-tuned lost job creation on 2026-05-07, inactive ones on 2026-07-02, and no one
# can create fine-tuning jobs after 2027-01-06. It applies to every base model of the table.
# Per-model retirement dates of the base models are not tracked here.
FINE_TUNING_SHUTDOWN = Retirement(
    "2027-01-06", "OpenAI creates no new fine-tuning jobs after this date (for every organisation)",
    "OpenAI deprecations page (https://platform.openai.com/docs/deprecations), May 2026")


def retirement_notice(today: str) -> dict | None:
    """The shutdown as stats.json states it, from 90 days before it: retiring, then retired."""
    from datetime import date

    days = (date.fromisoformat(FINE_TUNING_SHUTDOWN.date) - date.fromisoformat(today)).days
    if days > 90:
        return None
    return {"status": "retired" if days < 0 else "retiring", "date": FINE_TUNING_SHUTDOWN.date,
            "days_left": max(days, 0), "what": FINE_TUNING_SHUTDOWN.what, "source": FINE_TUNING_SHUTDOWN.source}
