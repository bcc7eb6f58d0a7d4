"""An open-weights model's tokenizer files, found without the network where they can be.

What a model's tokens need: ``tokenizer.json``, ``tokenizer_config.json`` (its special tokens
and, usually, the chat template) and, for models that ship it apart, ``chat_template.jinja``.
``resolve_tokenizer_files`` looks, in order, in the folder the recipe names (a local path or
any fsspec URL), in Hugging Face's local cache (for a hub id such as ``Qwen/Qwen2.5-0.5B``), and
only then asks the hub, when ``huggingface_hub`` is installed and downloads are allowed. A
source whose files do not match the sha256 the recipe gives is refused and the next one tried,
as for tiktoken's files (``transforms/encodings.py``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
TEMPLATE_FILE = "chat_template.jinja"
REQUIRED = (TOKENIZER_FILE, CONFIG_FILE)
# A hub id: owner/name, letters, digits, ., _ and -.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class TokenizerFilesError(RuntimeError):
    """No source holds the model's tokenizer files; the message says how to provide them."""


class HubUnavailable(RuntimeError):
    """The hub did not answer for the repository (no network, no such repository, no access)."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"


@dataclass(frozen=True)
class TokenizerFiles:
    tokenizer_json: str
    tokenizer_config: str
    chat_template: str | None
    source: str


def hub_cache_dir() -> Path:
    """Where ``huggingface_hub`` keeps its cache (its own environment variables, in its order)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _from_folder(url: str) -> Callable[[str], str | None]:
    import fsspec

    fs, base = fsspec.core.url_to_fs(url)

    def read(name: str) -> str | None:
        path = f"{base.rstrip('/')}/{name}"
        if not fs.exists(path):
            return None
        with fs.open(path, "rb") as f:
            return f.read().decode("utf-8")

    return read


def _from_cache(repo_id: str, revision: str) -> Callable[[str], str | None] | None:
    repo = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"
    ref = repo / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snapshot = repo / "snapshots" / commit
    if not snapshot.is_dir():
        return None

    def read(name: str) -> str | None:
        path = snapshot / name
        return path.read_text(encoding="utf-8") if path.is_file() else None

    return read


# One request, no retries, before any download: huggingface_hub's downloads retry a network
# error with backoff for over a minute, and a machine without network should hear so at once.
HUB_PROBE_SECONDS = 3.0


def _from_hub(repo_id: str, revision: str) -> Callable[[str], str | None]:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError
    from huggingface_hub.utils import disable_progress_bars

    # Three small files: no progress bars, and no retry warnings on stderr (ftprep's lines only).
    disable_progress_bars()
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        HfApi().model_info(repo_id, revision=revision, timeout=HUB_PROBE_SECONDS)
    except Exception as error:  # noqa: BLE001 - unreachable, unknown repository, no access: said in one line
        raise HubUnavailable(f"{type(error).__name__}: {_first_line(error)}") from None

    def read(name: str) -> str | None:
        try:
            return Path(hf_hub_download(repo_id, name, revision=revision)).read_text(encoding="utf-8")
        except EntryNotFoundError:
            return None

    return read


def _sources(tokenizer: str, revision: str, allow_download: bool) -> list[tuple[str, Callable[[], Callable | None]]]:
    sources: list[tuple[str, Callable[[], Callable | None]]] = []
    is_hub_id = bool(_HUB_ID.match(tokenizer)) and "://" not in tokenizer and not os.path.exists(tokenizer)
    if not is_hub_id:
        sources.append((f"folder {tokenizer}", lambda: _from_folder(tokenizer)))
    else:
        sources.append((f"Hugging Face cache ({hub_cache_dir()})", lambda: _from_cache(tokenizer, revision)))
        if allow_download:
            sources.append(("the Hugging Face hub", lambda: _from_hub(tokenizer, revision)))
    return sources


def resolve_tokenizer_files(tokenizer: str, *, revision: str = "main", sha256: dict[str, str] | None = None,
                            allow_download: bool = True) -> TokenizerFiles:
    """The model's tokenizer files from the first source that has them (and matches ``sha256``,
    file name -> hex digest, where given)."""
    problems = []
    for source, opener in _sources(tokenizer, revision, allow_download):
        try:
            read = opener()
            texts = {name: read(name) for name in (*REQUIRED, TEMPLATE_FILE)} if read is not None else None
        except ImportError:
            problems.append(f"{source}: huggingface_hub is not installed")
            continue
        except HubUnavailable as error:
            problems.append(f"{source}: not reachable for this repository ({error})")
            continue
        except Exception as error:  # noqa: BLE001 - no access, no network, a bad URL: try the next source
            problems.append(f"{source}: {type(error).__name__}: {error}")
            continue
        if texts is None or any(texts[name] is None for name in REQUIRED):
            missing = [name for name in REQUIRED if texts is None or texts[name] is None]
            problems.append(f"{source}: no {' or '.join(missing)}")
            continue
        wrong = [name for name, digest in (sha256 or {}).items()
                 if texts.get(name) is None or hashlib.sha256(texts[name].encode("utf-8")).hexdigest() != digest]
        if wrong:
            problems.append(f"{source}: {', '.join(wrong)} refused (sha256 differs)")
            continue
        return TokenizerFiles(texts[TOKENIZER_FILE], texts[CONFIG_FILE], texts[TEMPLATE_FILE], source)
    raise TokenizerFilesError(
        f"cannot find the tokenizer files of {tokenizer!r} ({'; '.join(problems)}); give target.tokenizer as a "
        f"folder or URL holding {TOKENIZER_FILE} and {CONFIG_FILE} (e.g. what `hf download {tokenizer} "
        f"{TOKENIZER_FILE} {CONFIG_FILE} {TEMPLATE_FILE}` fetches where there is network)"
    )
