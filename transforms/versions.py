"""Versions of installed packages, as a run records them (``--version``, the manifest, what
``--resume`` compares, which TRL made the masks)."""

from __future__ import annotations


def installed_version(package: str) -> str | None:
    """``package``'s installed version, or None (not installed: a source tree run as it is)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None
