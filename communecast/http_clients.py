"""HTTP clients for the project's own tools: provisioning, the demo, the test harness and the
benchmarks, which open a short-lived client per call.

httpx builds a new TLS context for every client it opens, with the whole CA bundle loaded,
even for a plain-HTTP address: 22 ms of CPU each on this machine when quiet (94 ms under the
test suite), against under 1 ms with one shared context. The harness opened one per API call;
the suite is CPU-bound, though this alone made no difference measurable above its noise. One
context per process, built on first use, is what every client here shares.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's own default (certifi's CA bundle, host names checked), built once."""
    return httpx.create_ssl_context()


def client(base_url: str, *, timeout: float, **kwargs: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` for `base_url` that reuses the process's TLS context."""
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, verify=tls_context(), **kwargs)
