"""What ``seqnlp serve`` adds to uvicorn against slow and numerous clients: a deadline for request headers, a cap on
open connections, and overload logged once instead of once per attempt.

uvicorn's own settings are used where they exist: ``timeout_keep_alive`` closes a connection idle between requests,
``h11_max_incomplete_event_size`` bounds the bytes of an unfinished request line and headers, ``backlog`` the
kernel's queue of connections not yet accepted. But uvicorn has no deadline for headers, so a client that opens
a connection and sends nothing, or a byte every few seconds ("slowloris"), holds it for good; and nothing bounds
the sockets it accepts (``limit_concurrency`` answers 503 to *requests* once that many connections exist, yet
accepts every connection and logs every refusal), so enough of them exhaust the process's file descriptors, after
which asyncio logs a traceback for each failed accept.

``guarded_protocol`` returns uvicorn's h11 protocol with the two missing pieces: a connection whose request headers
are not complete ``header_timeout`` seconds after it opened (or after it sent its first byte of a next request)
gets 408 and is closed; a connection beyond ``max_connections`` gets 503 and is closed at once, before it costs
anything but the moment's file descriptor. ``quiet_accept_errors`` turns asyncio's per-attempt accept tracebacks
into one warning a minute. ``make_server`` builds the uvicorn server ``seqnlp serve`` runs, with all of it. The
deadline for a request's body is the app's (``seqnlp.serve``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any, Optional

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from seqnlp.errors import ConfigError

log = logging.getLogger(__name__)

FD_RESERVE = 32  # file descriptors kept free beside those open at start (logs, the event loop, a reload)


def _response(status: str, error: str) -> bytes:
    """A whole HTTP response, written raw: it answers a connection before (or instead of) a parsed request."""
    body = json.dumps({"error": error}).encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


_REFUSED = _response("503 Service Unavailable", "too many open connections; try again shortly")
_TIMED_OUT = _response("408 Request Timeout", "the request headers did not arrive in time")


@dataclass(frozen=True)
class ConnectionLimits:
    """How long and how many: what one client, or many, may hold of the server."""

    max_connections: int = 256  # open connections; more are answered 503 and closed (see default_max_connections)
    header_timeout: float = 10.0  # seconds for a request's line and headers to arrive
    keep_alive: float = 5.0  # seconds an idle connection stays open between requests (uvicorn's timeout_keep_alive)
    max_header_bytes: int = 16_384  # bytes of an unfinished request line and headers (uvicorn's h11 limit)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{name} must be a positive number, not {value!r}")

    def uvicorn_settings(self) -> dict[str, Any]:
        """The limits uvicorn has settings of its own for, as ``uvicorn.Config`` keywords. The backlog is also how
        many connections asyncio accepts in one go, before any is refused: at most as many again as the cap."""
        return {"timeout_keep_alive": self.keep_alive, "h11_max_incomplete_event_size": self.max_header_bytes,
                "backlog": self.max_connections}


def default_max_connections(cap: int = ConnectionLimits.max_connections) -> int:
    """``cap``, or fewer when the open-file limit (ulimit -n) would run out first: half of what is left of it once
    the files open now (the model loaded, the libraries' own) and a reserve are counted, since asyncio may accept
    a backlog's worth (as many again) in one go before any is refused. Call it once the model is loaded."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # pragma: no cover - no resource module (Windows)
        return cap
    if soft == resource.RLIM_INFINITY:
        return cap
    try:
        open_now = len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: assume a few dozen
        open_now = 64
    return max(1, min(cap, (soft - open_now - FD_RESERVE) // 2))


class _Overload:
    """Whether the cap is being hit: logged when it starts and when it ends, with the count in between."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.refused = 0

    def refuse(self) -> None:
        if self.refused == 0:
            log.warning("%d connections are open, the limit (--max-connections): new ones get 503 until some close",
                        self.cap)
        self.refused += 1

    def closed(self, open_now: int) -> None:
        if self.refused and open_now < self.cap:
            log.warning("below the connection limit again; %d connections were refused meanwhile", self.refused)
            self.refused = 0


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a header deadline and a connection cap (pass it as ``uvicorn.Config(http=...)``)."""
    overload = _Overload(limits.max_connections)

    class GuardedH11Protocol(H11Protocol):
        _refused = False
        _deadline: Optional[asyncio.TimerHandle] = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= limits.max_connections:
                self.transport, self._refused = transport, True
                overload.refuse()
                transport.write(_REFUSED)
                transport.close()
                return
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if (self.cycle is None or self.cycle.response_complete) and self._deadline is None:
                self._arm()  # the first bytes of the next request on a kept-alive connection
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # the headers are in; the app bounds the body

        def connection_lost(self, exc: Optional[Exception]) -> None:
            self._disarm()
            if self._refused:
                return
            super().connection_lost(exc)
            overload.closed(len(self.connections))

        def _arm(self) -> None:
            self._deadline = self.loop.call_later(limits.header_timeout, self._headers_timed_out)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _headers_timed_out(self) -> None:
            self._deadline = None
            if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
                return
            log.debug("closed a connection whose request headers did not arrive within %g s", limits.header_timeout)
            self.transport.write(_TIMED_OUT)
            self.transport.close()

    return GuardedH11Protocol


def make_server(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                access_log: bool = True, connections: Optional[ConnectionLimits] = None,
                **uvicorn_options: Any) -> "Server":
    """The uvicorn server ``seqnlp.serve.run_server`` runs: the ASGI ``app``, the connection limits (default:
    ``ConnectionLimits`` with the cap lowered to fit ulimit -n) and uvicorn's own settings for them."""
    limits = connections or ConnectionLimits(max_connections=default_max_connections())
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            server_header=False, timeout_graceful_shutdown=30, http=guarded_protocol(limits),
                            **limits.uvicorn_settings(), **uvicorn_options)
    return Server(config)


class Server(uvicorn.Server):
    """uvicorn's server that records the signals it handled and logs failed accepts once a minute."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.signals: list[int] = []

    def handle_exit(self, sig: int, frame: Optional[FrameType]) -> None:
        self.signals.append(sig)
        super().handle_exit(sig, frame)

    async def serve(self, sockets: Any = None) -> None:
        quiet_accept_errors(asyncio.get_running_loop())
        await super().serve(sockets)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, every: float = 60.0) -> None:
    """asyncio logs a traceback for each accept() that fails for want of file descriptors (EMFILE), many times a
    second under load: log one warning a minute instead; every other error goes to the handler there was."""
    previous = loop.get_exception_handler()
    last = [-every]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            now = time.monotonic()
            if now - last[0] >= every:
                last[0] = now
                log.warning("cannot accept connections: %s (pid %d is at its open-file limit, ulimit -n); lower "
                            "--max-connections", context.get("exception"), os.getpid())
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
