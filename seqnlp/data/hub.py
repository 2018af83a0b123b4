"""The Hugging Face Hub without a network: say so at once, instead of after half a minute of retries.

Loading a Hub dataset is the default path for users who are online. Offline, ``datasets`` retries every request
before it falls back to its cache, and then reports "Dataset imdb is not cached in None". So before a Hub load:
with HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set, or when the Hub's host cannot be reached (one TCP connection, a few
seconds at most; skipped behind a proxy, which only the proxy can judge), the load reads the cache alone, in
``datasets``' own offline mode, and a dataset that is not cached is one line naming the reason and the way out
(local files with --data-files).
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Iterator, Optional
from urllib.parse import urlsplit

import datasets
from huggingface_hub import constants

PROBE_TIMEOUT = 3.0  # seconds to connect to the Hub before calling the network unreachable
_PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
NO_NETWORK_HINT = "give local files with --data-files train=PATH (and validation=, test=), or connect and try again"


def offline_reason() -> Optional[str]:
    """Why the Hub cannot be reached now ("HF_HUB_OFFLINE is set", "huggingface.co:443 is unreachable: ..."), or
    None when it may be."""
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE"):
            return f"{name} is set"
    if datasets.config.HF_HUB_OFFLINE:
        return "offline mode is on"
    if any(os.environ.get(name) for name in _PROXIES):
        return None
    url = urlsplit(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT).close()
    except OSError as exc:
        return f"{host}:{port} is unreachable: {exc.strerror or type(exc).__name__}"
    return None


@contextlib.contextmanager
def offline_mode() -> Iterator[None]:
    """``datasets`` and ``huggingface_hub`` in their offline mode for the block: the cache only, no retries."""
    saved = (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved
