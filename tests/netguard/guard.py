"""Refuse every network connection that does not stay on this machine.

Installed by the test suite in its own process (tests/conftest.py) and, through sitecustomize.py in
this folder, in every Python subprocess the tests start (Celery workers, the portal). Anything that
tries to phone home (telemetry, a model hub, a price list, a stray provider call) fails loudly.
"""

from __future__ import annotations

import _socket
import ipaddress
import socket
from typing import Any

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", ""})
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex
_original_getaddrinfo = socket.getaddrinfo


class NetworkBlocked(OSError):
    """A test (or the code under test) tried to reach a non-loopback address."""


def _is_loopback_host(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(sock: _socket.socket, address: Any) -> None:
    inet = sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple)
    if inet and not _is_loopback_host(address[0]):
        raise NetworkBlocked(f"outbound connection to {address[0]}:{address[1]} blocked by the test suite")


def _guarded_connect(self: _socket.socket, address: Any) -> None:
    _check(self, address)
    return _original_connect(self, address)


def _guarded_connect_ex(self: _socket.socket, address: Any) -> int:
    _check(self, address)
    return _original_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not _is_loopback_host(host):
        try:
            ipaddress.ip_address(str(host.decode() if isinstance(host, bytes) else host).strip("[]"))
        except ValueError:
            raise NetworkBlocked(f"name lookup of {host!r} blocked by the test suite") from None
    return _original_getaddrinfo(host, *args, **kwargs)


def install() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo
