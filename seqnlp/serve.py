"""An HTTP JSON API over a loaded Classifier, an optional extra (``pip install 'seqnlp[serve]'``).

    GET  /health        liveness and readiness: the model is loaded; its labels, cell and the seqnlp version
    GET  /v1/model      metadata: labels, a summary of the config, parameter count, the request limits, and the
                        inference settings (batch size, precision)
    POST /v1/predict    {"texts": [...]} or {"text": "..."}, optional "top_k" and "return_probabilities"

``create_app`` returns a Starlette (ASGI) app that can be mounted in a larger one; ``run_server`` serves it with
uvicorn, which shuts down gracefully on SIGINT and SIGTERM. Every error answers ``{"error": "..."}`` naming the
field and the value: 400 for a body that is not JSON, 422 for JSON of the wrong shape, 413 for a request over a
limit, 404 and 405 for unknown routes and methods.

Inference runs on one dedicated worker thread: the event loop stays free to accept and parse requests, and the model
is never called from two threads at once (requests queue in arrival order). Each request's texts are predicted in
one call, so they are batched by length as ``Classifier.predict`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any, AsyncIterator, Optional

from seqnlp.errors import ConfigError, SeqnlpError

INSTALL_HINT = "pip install 'seqnlp[serve]'"


class MissingExtraError(SeqnlpError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""


try:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
except ImportError as exc:  # one line for the CLI, and an ImportError for pytest.importorskip
    raise MissingExtraError(f"serving needs {exc.name}, which is not installed: {INSTALL_HINT}") from exc

from seqnlp import __version__
from seqnlp.model import count_parameters
from seqnlp.predict import DEFAULT_BATCH_SIZE, DEFAULT_PRECISION, Classifier
from seqnlp.runtime import ThreadControl
from seqnlp.threads import AUTO, usable_cpus

log = logging.getLogger(__name__)

ROUTES = "GET /health, GET /v1/model, POST /v1/predict"
PREDICT_FIELDS = ("texts", "text", "top_k", "return_probabilities")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; larger requests get 413 before any inference runs."""

    max_batch: int = 256  # texts per request
    max_text_chars: int = 20_000  # characters per text (the tokenizer keeps max_length tokens anyway)
    max_body_bytes: int = 1 << 20  # request body, checked on Content-Length and again while reading

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, not {value!r}")


class ApiError(Exception):
    """A request the API refuses: answered as ``{"error": message}`` with this status."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def default_threads() -> int:
    """The most torch threads inference gets: the usable CPUs (affinity mask and cgroup quota: ``seqnlp.threads``)
    less one, which the event loop needs for HTTP and JSON."""
    return max(1, usable_cpus() - 1)


def create_app(
    model: Classifier | str | Path,
    *,
    max_batch: int = Limits.max_batch,
    max_text_chars: int = Limits.max_text_chars,
    max_body_bytes: int = Limits.max_body_bytes,
    device: str = "auto",
    num_threads: int | str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: str = DEFAULT_PRECISION,
) -> Starlette:
    """The ASGI app serving ``model`` (a Classifier, or a run directory to load).

    ``device``, ``batch_size`` and ``precision`` are how a run directory is loaded (``Classifier.load``); a
    Classifier brings its own. ``num_threads`` sets torch's intra-op threads in the inference thread, replacing a
    Classifier's own setting: N, or ``auto``: at most ``default_threads()``, the fastest count timed over the
    requests (docs/performance.md); None keeps the Classifier's setting (a run directory: torch's). Mount the result anywhere (``Mount("/sentiment", app=create_app(...))``), or serve it with
    ``run_server``.
    """
    limits = Limits(max_batch, max_text_chars, max_body_bytes)
    if not (num_threads is None or num_threads == AUTO or (isinstance(num_threads, int)
                                                            and not isinstance(num_threads, bool) and num_threads >= 1)):
        raise ConfigError(f"num_threads must be auto or a positive integer, not {num_threads!r}")
    clf = model if isinstance(model, Classifier) else Classifier.load(model, device=device, batch_size=batch_size,
                                                                       precision=precision, num_threads=None)
    if num_threads is not None:
        clf.thread_control = ThreadControl(num_threads, clf.device, max_threads=default_threads())
    api = _Api(clf, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("serving %s: labels %s; POST /v1/predict", clf.run_dir or "a classifier", ", ".join(clf.label_names))
        try:
            yield
        finally:
            api.close()
            log.info("stopped serving %s", clf.run_dir or "a classifier")

    app = Starlette(
        routes=[
            Route("/health", api.health, methods=["GET"]),
            Route("/v1/model", api.model, methods=["GET"]),
            Route("/v1/predict", api.predict, methods=["POST"]),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.classifier = clf
    app.state.limits = limits
    return app


def run_server(app: Starlette, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
               access_log: bool = True) -> None:
    """Serve ``app`` with uvicorn until SIGINT or SIGTERM, which finish the requests in flight, then stop.

    uvicorn raises the signal again once it has shut down: SIGTERM then ends the process as SIGTERM does. SIGINT
    should raise KeyboardInterrupt, but re-raised inside ``asyncio.run`` it only cancels a task that may already
    have finished, so whether it surfaces is a race; a SIGINT the server saw is therefore raised here, and the
    CLI exits 130 after Ctrl-C, as ``seqnlp train`` does.
    """
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            server_header=False, timeout_graceful_shutdown=30)
    signals: list[int] = []

    class SignalRecordingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Optional[FrameType]) -> None:
            signals.append(sig)
            super().handle_exit(sig, frame)

    server = SignalRecordingServer(config)
    server.run()  # a port in use, or a failed start-up, is logged and exits 3 (uvicorn's STARTUP_FAILURE)
    if signal.SIGINT in signals:
        raise KeyboardInterrupt
    if not server.started:
        raise SeqnlpError(f"the server did not start on {host}:{port}; the log above says why")


class _Api:
    """The endpoints, sharing one classifier and the single thread it runs on (whose torch thread count the
    classifier's ``thread_control`` sets, call by call)."""

    def __init__(self, clf: Classifier, limits: Limits) -> None:
        self.clf = clf
        self.limits = limits
        self._executor: Optional[ThreadPoolExecutor] = None
        config = clf.config
        self.summary = {
            "cell": config.model.cell,
            "num_layers": config.model.num_layers,
            "bidirectional": config.model.bidirectional,
            "embedding_dim": config.model.embedding_dim,
            "hidden_size": config.model.hidden_size,
            "pooling": config.model.pooling,
            "tokenizer": config.tokenizer.kind,
            "vocab_size": clf.tokenizer.get_vocab_size(),
            "max_length": config.tokenizer.max_length,
            "text_columns": config.data.text_columns,
        }

    @property
    def executor(self) -> ThreadPoolExecutor:
        """Created on first use, so an app that is mounted (whose lifespan never runs) still gets one."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqnlp-infer")
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model_loaded": True, "labels": self.clf.label_names,
                             "cell": self.clf.config.model.cell, "version": __version__})

    async def model(self, request: Request) -> JSONResponse:
        return JSONResponse({
            "run_dir": str(self.clf.run_dir) if self.clf.run_dir is not None else None,
            "labels": self.clf.label_names,
            "num_labels": len(self.clf.label_names),
            "config": self.summary,
            "parameters": count_parameters(self.clf.model),
            "device": str(self.clf.device),
            "batch_size": self.clf.batch_size,
            "precision": self.clf.precision,
            "limits": asdict(self.limits),
            "version": __version__,
        })

    async def predict(self, request: Request) -> JSONResponse:
        payload = _parse_json(await self._read_body(request))
        texts, single, top_k, probabilities = self._validate(payload)
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(
            self.executor, lambda: self.clf.predict(texts, top_k=top_k, probabilities=probabilities))
        return JSONResponse({"prediction": results[0]} if single else {"predictions": results})

    async def _read_body(self, request: Request) -> bytes:
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"request body of {int(declared):,} bytes is over the limit of {limit:,} (max_body_bytes)")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body is over the limit of {limit:,} bytes (max_body_bytes)")
            chunks.append(chunk)
        return b"".join(chunks)

    def _validate(self, payload: Any) -> tuple[list[str], bool, Optional[int], bool]:
        """(texts, whether one "text" was given, top_k, return_probabilities), or an ApiError naming the field."""
        if not isinstance(payload, dict):
            raise ApiError(422, f'body must be a JSON object such as {{"texts": ["..."]}}, not {_json_type(payload)}')
        unknown = [key for key in payload if key not in PREDICT_FIELDS]
        if unknown:
            raise ApiError(422, f"unknown field {_short(unknown[0])}; fields: {', '.join(PREDICT_FIELDS)}")
        if ("texts" in payload) == ("text" in payload):
            raise ApiError(422, 'give either "texts" (a list of strings) or "text" (a string)'
                           + (", not both" if "text" in payload else ""))
        single = "text" in payload
        if single:
            texts = [payload["text"]]
            names = ["text"]
        else:
            texts = payload["texts"]
            if not isinstance(texts, list):
                raise ApiError(422, f'"texts" must be a list of strings, not {_json_type(texts)} {_short(texts)}')
            if not texts:
                raise ApiError(422, '"texts" is an empty list; give at least one text')
            if len(texts) > self.limits.max_batch:
                raise ApiError(413, f'"texts" has {len(texts):,} texts, over the limit of {self.limits.max_batch:,} '
                                    "per request (max_batch)")
            names = [f"texts[{i}]" for i in range(len(texts))]
        for name, text in zip(names, texts):
            if not isinstance(text, str):
                raise ApiError(422, f'"{name}" must be a string, not {_json_type(text)} {_short(text)}')
            if len(text) > self.limits.max_text_chars:
                raise ApiError(413, f'"{name}" has {len(text):,} characters, over the limit of '
                                    f"{self.limits.max_text_chars:,} (max_text_chars)")
        top_k = payload.get("top_k")
        num_labels = len(self.clf.label_names)
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_labels):
            raise ApiError(422, f'"top_k" must be an integer from 1 to {num_labels} (the number of labels), '
                                f"not {_short(top_k)}")
        probabilities = payload.get("return_probabilities", False)
        if not isinstance(probabilities, bool):
            raise ApiError(422, f'"return_probabilities" must be true or false, not {_short(probabilities)}')
        return texts, single, top_k, probabilities


def _parse_json(body: bytes) -> Any:
    if not body:
        raise ApiError(400, 'empty body; send a JSON object such as {"texts": ["..."]}')
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # e.g. a 5,000-digit number or nesting thousands deep
        raise ApiError(400, f"body is not usable JSON: {exc}") from None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _short(value: Any, width: int = 60) -> str:
    """The value as JSON, cut to ``width`` characters so an error never echoes a whole request back."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse({"error": exc.message}, status_code=exc.status_code)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own 404 and 405 (and any other HTTPException), as JSON that says what exists."""
    assert isinstance(exc, HTTPException)
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        message = f"no route {method} {path}; routes: {ROUTES}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"method {method} is not allowed on {path}; allowed: {allowed}"
    else:
        message = str(exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug, not a bad request: the client gets a short message, the log gets the traceback (uvicorn logs it)."""
    return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server log has the details"},
                        status_code=500)
