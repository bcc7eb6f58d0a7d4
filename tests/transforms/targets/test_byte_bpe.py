"""tiktoken running a model's byte-level BPE: the very ids and masks of its tokenizer.json, on
real models' files; the families it is not (Gemma's SentencePiece-style BPE) keep tokenizers."""

from __future__ import annotations

import json

import pytest

from tests.real_tokenizers import folder
from transforms.targets.byte_bpe import CHECK_TEXT, agrees, byte_level_bpe, byte_spans, mask_from_bytes

TEXTS = [
    CHECK_TEXT,
    "<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\nBecause.<|im_end|>\n",
    "   leading and trailing spaces   \n\n\n tabs\t\tand CRLF\r\n",
    "numbers 1234567890 12,345.678 and 3rd, 2nd; it's they're we'd I'LL",
    "naïve café — emoji 🤖🧪, CJK 漢字かなカナ, RTL עברית, combining e\u0301",
    "".join(chr(c) for c in range(0x20, 0x250)),
]


def tokenizer_text(family: str) -> str:
    return (folder(family) / "tokenizer.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("family", ["qwen2_5", "qwen3", "llama3_1", "gptoss"])
def test_the_same_ids_as_the_tokenizer_file(family):
    from tokenizers import Tokenizer

    text = tokenizer_text(family)
    fast, slow = byte_level_bpe(json.loads(text)), Tokenizer.from_str(text)
    assert fast is not None and agrees(fast, slow)
    for sample in TEXTS:
        if fast.takes(sample):
            assert fast.encode(sample) == slow.encode(sample, add_special_tokens=False).ids, sample[:40]
        starts, ends = fast.byte_offsets(fast.encode(sample))
        assert ends[-1] == len(sample.encode("utf-8")) and list(starts[1:]) == list(ends[:-1])


def test_gemma_s_tokenizer_is_not_byte_level_bpe():
    assert byte_level_bpe(json.loads(tokenizer_text("gemma3"))) is None


def test_a_text_nfc_would_change_is_left_to_the_tokenizer():
    fast = byte_level_bpe(json.loads(tokenizer_text("qwen2_5")))  # Qwen normalizes to NFC first
    assert fast.nfc and not fast.takes("e\u0301") and fast.takes("\u00e9")
    assert not byte_level_bpe(json.loads(tokenizer_text("llama3_1"))).nfc


def test_masks_from_byte_ranges_equal_masks_from_character_offsets():
    from tokenizers import Tokenizer

    from transforms.targets.chat_template import trained_mask

    text = "<|im_start|>user\nprix: 5 €<|im_end|>\n<|im_start|>assistant\nCinq euros — ça va?<|im_end|>\n"
    start = text.index("Cinq")
    spans = ((start, len(text)),)
    raw = tokenizer_text("qwen2_5")
    fast, slow = byte_level_bpe(json.loads(raw)), Tokenizer.from_str(raw)
    encoding = slow.encode(text, add_special_tokens=False)
    starts, ends = fast.byte_offsets(fast.encode(text))
    assert mask_from_bytes(starts, ends, byte_spans(text, spans)) == trained_mask(encoding.offsets, spans)


def test_a_tokenizer_whose_merges_are_not_in_rank_order_is_refused():
    data = json.loads(tokenizer_text("qwen2_5"))
    merges = data["model"]["merges"]
    merges[0], merges[1000] = merges[1000], merges[0]
    assert byte_level_bpe(data) is None


def test_a_text_nfc_changes_is_normalized_piece_by_piece_as_the_tokenizer_would():
    """Qwen's tokenizer normalizes to NFC before it splits: the fast path encodes the NFC text
    and moves the trained spans onto it, so decomposed accents take neither the slow path nor a
    wrong mask."""
    from tokenizers import Tokenizer

    from transforms.targets.chat_template import trained_mask

    text = "<|im_start|>user\ncafe\u0301?<|im_end|>\n<|im_start|>assistant\nOui, cafe\u0301 noir.<|im_end|>\n"
    spans = ((text.index("Oui"), len(text)),)
    raw = tokenizer_text("qwen2_5")
    fast, slow = byte_level_bpe(json.loads(raw)), Tokenizer.from_str(raw)
    normalized, moved = fast.normalized(text, spans)
    assert normalized == text.replace("e\u0301", "\u00e9") and moved == ((spans[0][0] - 1, spans[0][1] - 2),)
    encoding = slow.encode(text, add_special_tokens=False)
    ids = fast.encode(normalized)
    starts, ends = fast.byte_offsets(ids)
    assert ids == encoding.ids
    assert mask_from_bytes(starts, ends, byte_spans(normalized, moved)) == trained_mask(encoding.offsets, spans)


@pytest.mark.parametrize("family", ["qwen2_5", "gemma3"])
def test_token_pieces_equal_the_tokenizer_s_and_reuse_a_loaded_counter(family):
    """The report's and preview's token texts: from the rank table where the fast path holds
    one (Qwen), from the tokenizer otherwise (Gemma); a counter already loaded for the same files
    in this process is reused, not loaded again."""
    import pickle

    from transforms.targets.hf_tokens import HfSource

    source = HfSource(str(folder(family)), allow_download=False).check()
    counter = source.load()
    text = "Hello 東京 ünïcödé 😀\n\n  code\tx"
    ids = counter.tokenizer.encode(text, add_special_tokens=False).ids
    elsewhere = pickle.loads(pickle.dumps(source))  # as a worker receives it
    assert elsewhere.pieces().__self__ is counter
    assert counter.pieces(ids) == [counter.tokenizer.decode([i], skip_special_tokens=False) for i in ids]
