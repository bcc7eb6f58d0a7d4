"""What makes two examples "the same", in one place: the normalisation (NFKC, case-folded,
whitespace runs as one space) and the digest of a normalised example. Exact and near dedup,
the split and the echo filter all use these, so that they agree on sameness."""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any

import orjson


def normalize_text(text: str) -> str:
    """What makes two texts "the same": NFKC, case-folded, whitespace runs as one space."""
    if text.isascii():  # NFKC leaves ASCII as it is, and casefold is lower there: the same text, sooner
        return " ".join(text.lower().split())
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalized(value: Any) -> Any:
    """``value`` with every string normalised (keys stay)."""
    kind = value.__class__
    if kind is str:
        return normalize_text(value)
    if kind is dict:
        return {k: normalized(v) for k, v in value.items()}
    if kind is list:
        return [normalized(v) for v in value]
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    return value


def digest(value: Any) -> bytes:
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str),
                           digest_size=16).digest()


def content_key(example: Any) -> bytes:
    """Digest of the normalised example: equal for examples that differ only in case and spacing."""
    return digest(normalized(example))
