"""Shared fixtures. Every test runs with the network cut off and an empty tiktoken cache."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest
from hypothesis import settings

# CI runs the same examples every time so that a red run is reproducible; locally they vary.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

_real_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            allowed = ipaddress.ip_address(host).is_loopback
        except ValueError:
            allowed = host == "localhost"
        if not allowed:
            raise OSError(f"test tried to reach {address}: tests must not touch the network")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Loopback stays open (Beam's multi-process workers talk gRPC over it); anything else fails."""
    socket.socket.connect = _loopback_only
    yield
    socket.socket.connect = _real_connect


@pytest.fixture(autouse=True, scope="session")
def empty_tiktoken_cache(tmp_path_factory):
    """Start from an empty tiktoken cache so the offline resolution path is what is tested."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path_factory.mktemp("tiktoken-cache")))
    yield
    mp.undo()


def pytest_collection_modifyitems(items):
    """The deploy tests first (each file starts a service and runs pipelines in subprocesses: the
    longest files). The suite's workers take whole files in this order (``--dist loadfile
    --no-loadscope-reorder``), so the long files start early instead of ending the run alone."""
    items.sort(key=lambda item: not item.nodeid.startswith("tests/deploy/"))
