"""Talking to a service that may be down: a few attempts with a doubling wait, then one clear
error naming the service, its URL and what to do (`services:` in params.yaml)."""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from driftloop.config import ServiceParams

log = logging.getLogger(__name__)
T = TypeVar("T")


class ServiceDown(RuntimeError):
    """A service stayed unreachable through every retry; nothing was half-written."""


def delays(sp: ServiceParams) -> list[float]:
    """The waits before each retry: backoff_s, doubled each time (pure)."""
    return [sp.backoff_s * 2 ** i for i in range(sp.retries)]


def with_retries(call: Callable[[], T], sp: ServiceParams, *, service: str, url: str, todo: str,
                 transient: tuple[type[BaseException], ...] = (OSError,)) -> T:
    """`call()`, retried on `transient` errors; after the last attempt a ServiceDown that
    names `service`, `url`, the error and `todo` (what the user should do)."""
    waits = delays(sp)
    for attempt in range(len(waits) + 1):
        try:
            return call()
        except transient as exc:
            if attempt == len(waits):
                raise ServiceDown(f"{service} at {url} is not reachable ({type(exc).__name__}: "
                                  f"{exc}) after {attempt + 1} attempts; {todo}") from None
            log.warning("%s at %s: %s; retrying in %.1f s", service, url, exc, waits[attempt])
            time.sleep(waits[attempt])
    raise ServiceDown(f"{service} at {url}: no attempt made")  # retries < 0 cannot pass params


def probe(url: str, timeout: float) -> None:
    """GET `url`; an OSError (refused, timed out, HTTP error) when it does not answer 200."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        if r.status != 200:
            raise OSError(f"HTTP {r.status}")


def require(url: str, sp: ServiceParams, *, service: str, todo: str) -> None:
    """Fail fast and clearly when the health endpoint `url` does not answer."""
    with_retries(lambda: probe(url, sp.timeout_s), sp, service=service, url=url, todo=todo)
