"""The Hub without a network (issue 14, item 13): one line at once, naming the reason and --data-files, instead of
"Dataset imdb is not cached in None" after half a minute of retries."""

from __future__ import annotations

import socket

import datasets
import pytest

from seqnlp.config import DataConfig
from seqnlp.data import hub
from seqnlp.data.sources import load_raw
from seqnlp.errors import DataError


def test_offline_by_environment_answers_at_once() -> None:
    """The tests run with HF_HUB_OFFLINE=1 (tests/conftest.py), as an offline user would."""
    with pytest.raises(DataError) as info:
        load_raw(DataConfig(dataset="imdb"))
    assert str(info.value) == ("Hub dataset 'imdb' is not in the local datasets cache and there is no network "
                               "(HF_DATASETS_OFFLINE is set); give local files with --data-files train=PATH (and "
                               "validation=, test=), or connect and try again")


def test_an_unreachable_hub_is_found_with_one_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", *hub._PROXIES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    attempts = []

    def unreachable(address: tuple[str, int], timeout: float) -> socket.socket:
        attempts.append((address, timeout))
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    assert hub.offline_reason() == "huggingface.co:443 is unreachable: Name or service not known"
    with pytest.raises(DataError, match=r"^Hub dataset 'imdb' is not in the local datasets cache and there is no "
                                        r"network \(huggingface\.co:443 is unreachable: Name or service not known\)"):
        load_raw(DataConfig(dataset="imdb"))
    assert attempts[-1] == (("huggingface.co", 443), hub.PROBE_TIMEOUT)
    assert datasets.config.HF_HUB_OFFLINE is False  # offline mode was for that load only


def test_behind_a_proxy_the_network_is_not_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("probed past a proxy"))
    assert hub.offline_reason() is None
