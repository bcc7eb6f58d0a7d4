"""A model's byte-level BPE tokenizer run by tiktoken: the same ids as its ``tokenizer.json``,
several times faster.

Qwen2/2.5/3, Llama-3 and gpt-oss publish byte-level BPE vocabularies made from tiktoken-style
rank tables: a regex splits the text, each piece is merged pair by pair, lowest rank first. Run
by Hugging Face ``tokenizers`` such a tokenizer spends most of ftprep's time per example (about
300 µs for 1,700 characters with Qwen2.5's), while tiktoken's BPE does the same merges in about
50 µs. ``byte_level_bpe`` builds the tiktoken ``Encoding`` from the tokenizer file only where
the two are the same algorithm — a Split regex then ByteLevel, BPE without byte fallback, no
normalizer or NFC, added tokens without strip rules, and merges in rank order — and ``check``
compares both on a fixed multilingual text before it is used. Anything else (SentencePiece-style
tokenizers such as Gemma's, a text that NFC would change) is encoded by ``tokenizers`` as before.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

# A text the launch encodes both ways before trusting the fast path: scripts, digits, spacing,
# contractions, code, emoji and the template's own special tokens.
CHECK_TEXT = (
    "Hello, world! It's 3.14159 — we'll see. Ünïcödé, 東京タワー, Привет, مرحبا, नमस्ते, 한국어.\n\n"
    "  def f(x):\n\treturn x ** 2  # 😀 👍🏽\r\n{\"city\": \"Paris\", \"n\": 12345678}\n   \n"
)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-ins for bytes (``ByteLevel``), back to the bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(char): byte for byte, char in zip(printable, chars)}


def _split_regex(pre_tokenizer: dict | None) -> str | None:
    """The pattern of a ``Sequence[Split(Regex, Isolated), ByteLevel(use_regex=False)]``."""
    if not pre_tokenizer or pre_tokenizer.get("type") != "Sequence":
        return None
    steps = pre_tokenizer.get("pretokenizers") or []
    if len(steps) != 2 or steps[0].get("type") != "Split" or steps[1].get("type") != "ByteLevel":
        return None
    split, level = steps
    if split.get("behavior") != "Isolated" or split.get("invert") or "Regex" not in (split.get("pattern") or {}):
        return None
    if level.get("use_regex") or level.get("add_prefix_space"):
        return None
    return split["pattern"]["Regex"]


@dataclass
class ByteLevelBpe:
    """tiktoken's ``Encoding`` for a byte-level BPE tokenizer, and each token's length in bytes."""

    encoding: Any
    token_bytes: np.ndarray  # id -> its length in bytes
    nfc: bool  # the tokenizer normalizes to NFC first: a text NFC would change is not taken here

    def takes(self, text: str) -> bool:
        return not self.nfc or unicodedata.is_normalized("NFC", text)

    def normalized(self, text: str, spans: tuple[tuple[int, int], ...]) -> tuple[str, tuple[tuple[int, int], ...]] | None:
        """``text`` as the tokenizer's normalizer leaves it, and ``spans`` moved onto it; None
        when that cannot be done piece by piece (NFC joining characters across a span's edge).
        Without a normalizer, or for NFC text, both as they are."""
        if self.takes(text):
            return text, spans
        cuts = sorted({0, len(text), *(edge for span in spans for edge in span)})
        parts = [unicodedata.normalize("NFC", text[begin:end]) for begin, end in zip(cuts, cuts[1:])]
        whole = "".join(parts)
        if whole != unicodedata.normalize("NFC", text):
            return None
        moved, at = {}, 0
        for cut, part in zip(cuts, [*parts, ""]):
            moved[cut] = at
            at += len(part)
        return whole, tuple((moved[begin], moved[end]) for begin, end in spans)

    def encode(self, text: str) -> list[int]:
        # Added tokens are matched anywhere in the text, before the regex, as tokenizers does.
        return self.encoding.encode(text, allowed_special="all")

    def byte_offsets(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        lengths = self.token_bytes[np.asarray(ids, dtype=np.int64)]
        ends = np.cumsum(lengths)
        return ends - lengths, ends


def byte_level_bpe(tokenizer: dict) -> ByteLevelBpe | None:
    """The fast path for ``tokenizer`` (a parsed ``tokenizer.json``), or None where it is not the
    same algorithm."""
    import tiktoken

    model, normalizer = tokenizer.get("model") or {}, tokenizer.get("normalizer")
    pattern = _split_regex(tokenizer.get("pre_tokenizer"))
    if model.get("type") != "BPE" or model.get("byte_fallback") or pattern is None:
        return None
    if normalizer is not None and normalizer.get("type") != "NFC":
        return None
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix") or model.get("dropout"):
        return None
    added = tokenizer.get("added_tokens") or []
    if any(t.get("lstrip") or t.get("rstrip") or t.get("single_word") or t["content"] in model["vocab"] for t in added):
        return None  # strip rules, or an added token the merges could also make: not tiktoken's special tokens
    decoder = _byte_decoder()
    try:
        ranks = {bytes(decoder[char] for char in token): rank for token, rank in model["vocab"].items()}
    except KeyError:  # a vocabulary entry that is not byte-level text
        return None
    if not _merges_in_rank_order(model.get("merges") or [], model["vocab"]):
        return None
    special = {t["content"]: t["id"] for t in added}
    size = max([*ranks.values(), *special.values()]) + 1
    lengths = np.zeros(size, dtype=np.int64)
    for token, rank in ranks.items():
        lengths[rank] = len(token)
    for content, rank in special.items():
        lengths[rank] = len(content.encode("utf-8"))
    try:
        encoding = tiktoken.Encoding("ftprep-byte-level-bpe", pat_str=pattern, mergeable_ranks=ranks,
                                     special_tokens=special)
    except ValueError:  # a pattern tiktoken's regex engine does not take
        return None
    return ByteLevelBpe(encoding, lengths, normalizer is not None)


def _merges_in_rank_order(merges: list, vocab: dict[str, int]) -> bool:
    """tiktoken merges the adjacent pair whose result ranks lowest; tokenizers the pair listed
    first. They agree when the list is in the order of its results' ranks and names tokens of
    the vocabulary (a tokenizer converted from a rank table lists every split of a token, so
    every pair tiktoken may merge is listed, next to the other splits of the same result)."""
    last = -1
    for merge in merges:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        rank = vocab.get(left + right)
        if rank is None or rank < last or left not in vocab or right not in vocab:
            return False
        last = rank
    return True


def agrees(fast: ByteLevelBpe, tokenizer) -> bool:
    """Both give the same ids for ``CHECK_TEXT`` with every added token in it."""
    text = CHECK_TEXT + "".join(token for token in fast.encoding.special_tokens_set) + CHECK_TEXT
    return fast.encode(text) == tokenizer.encode(text, add_special_tokens=False).ids


def mask_from_bytes(starts: np.ndarray, ends: np.ndarray, spans: list[tuple[int, int]]) -> list[int]:
    """1 for each token (by its byte range) that overlaps a trained span (byte ranges), as
    ``chat_template.trained_mask`` does with character offsets."""
    mask = np.zeros(len(starts), dtype=bool)
    for begin, end in spans:
        mask |= (starts < end) & (ends > begin)
    return mask.astype(np.int64).tolist()


def byte_spans(text: str, spans: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """Character spans of ``text`` as byte spans of its UTF-8 encoding."""
    if text.isascii():
        return list(spans)
    return [(len(text[:begin].encode("utf-8")), len(text[:end].encode("utf-8"))) for begin, end in spans]
