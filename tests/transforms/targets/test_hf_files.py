"""Tokenizer files resolved without the network: a folder, an fsspec URL, Hugging Face's cache."""

import hashlib
import json

import fsspec
import pytest

from transforms.targets import hf_files
from transforms.targets.hf_files import TokenizerFilesError, resolve_tokenizer_files

FILES = {"tokenizer.json": '{"version": "1.0"}', "tokenizer_config.json": json.dumps({"eos_token": "</s>"}),
         "chat_template.jinja": "{% for m in messages %}{{ m.content }}{% endfor %}"}


def write(folder, files=FILES):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_a_local_folder(tmp_path):
    found = resolve_tokenizer_files(str(write(tmp_path / "model")), allow_download=False)
    assert (found.tokenizer_json, found.chat_template) == (FILES["tokenizer.json"], FILES["chat_template.jinja"])
    assert found.source.startswith("folder ")


def test_an_fsspec_url_and_a_folder_without_a_separate_template():
    memory = fsspec.filesystem("memory")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        memory.pipe(f"/models/m/{name}", FILES[name].encode())
    found = resolve_tokenizer_files("memory://models/m", allow_download=False)
    assert found.tokenizer_config == FILES["tokenizer_config.json"] and found.chat_template is None


def test_a_hub_id_from_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--acme--tiny-chat"
    write(repo / "snapshots" / "0123abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    found = resolve_tokenizer_files("acme/tiny-chat", allow_download=False)
    assert found.tokenizer_json == FILES["tokenizer.json"] and "cache" in found.source


def test_the_hub_is_asked_last(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(hf_files, "_from_hub", lambda repo_id, revision: FILES.get)
    assert resolve_tokenizer_files("acme/tiny-chat").source == "the Hugging Face hub"


def test_files_that_do_not_match_their_sha256_are_refused(tmp_path):
    folder = str(write(tmp_path / "model"))
    good = {"tokenizer.json": hashlib.sha256(FILES["tokenizer.json"].encode()).hexdigest()}
    assert resolve_tokenizer_files(folder, sha256=good, allow_download=False).source.startswith("folder")
    with pytest.raises(TokenizerFilesError, match="tokenizer.json refused"):
        resolve_tokenizer_files(folder, sha256={"tokenizer.json": "0" * 64}, allow_download=False)


def test_nothing_found_says_what_was_tried_and_how_to_provide_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(TokenizerFilesError) as error:
        resolve_tokenizer_files("acme/missing", allow_download=False)
    message = str(error.value)
    assert "Hugging Face cache" in message and "hf download acme/missing tokenizer.json" in message
    write(tmp_path / "half", {"tokenizer.json": "{}"})
    with pytest.raises(TokenizerFilesError, match="no tokenizer_config.json"):
        resolve_tokenizer_files(str(tmp_path / "half"), allow_download=False)


def test_an_unreachable_hub_is_one_problem_at_once(tmp_path, monkeypatch):
    """One request, no retries: huggingface_hub's downloads would retry a refused connection with
    backoff for over a minute (a closed loopback port answers as a machine without network)."""
    import socket
    import time

    import huggingface_hub.constants

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    started = time.monotonic()
    with pytest.raises(TokenizerFilesError, match=r"the Hugging Face hub: not reachable for this repository \(Connect"):
        resolve_tokenizer_files("acme/tiny-chat")
    assert time.monotonic() - started < hf_files.HUB_PROBE_SECONDS + 2
