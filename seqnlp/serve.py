"""An HTTP JSON API over a loaded Classifier, an optional extra (``pip install 'seqnlp[serve]'``).

    GET  /health        liveness and readiness: the model is loaded; its labels, cell and the seqnlp version
    GET  /v1/model      metadata: labels, a summary of the config, parameter count, the request limits, and the
                        inference settings (batch size, precision)
    POST /v1/predict    {"texts": [...]} or {"text": "..."}, optional "top_k", "return_probabilities" and
                        "min_confidence" (below it the answer abstains: {"label": null, "abstained": true, ...})
    POST /v1/explain    {"texts": [...]} or {"text": "..."} (at most 16 texts), optional "label", "steps" and
                        "occlusion": token attributions (seqnlp.explain), one JSON object per text

``create_app`` returns a Starlette (ASGI) app that can be mounted in a larger one; ``run_server`` serves it with
uvicorn, which shuts down gracefully on SIGINT and SIGTERM, with the connection limits of ``seqnlp.http_guard``
(a deadline for headers, a cap on open connections). Every error answers ``{"error": "..."}`` naming the field and
the value: 400 for a body that is not JSON, 422 for JSON of the wrong shape, 413 for a request over a limit, 415
for a POST that is not ``Content-Type: application/json`` (a browser can send text/plain across sites without
asking), 408 for a body that did not arrive within ``body_timeout``, 404 and 405 for unknown routes and methods. A
client that disconnects mid-request is logged in one line, not with a traceback.

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
from typing import Any, AsyncIterator, Optional

from seqnlp.errors import ConfigError, MissingExtraError, SeqnlpError

INSTALL_HINT = "pip install 'seqnlp[serve]'"

try:
    import uvicorn  # noqa: F401 - seqnlp.http_guard runs it; missing, it is this one-line error
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
except ImportError as exc:  # one line for the CLI, and an ImportError for pytest.importorskip
    raise MissingExtraError(f"serving needs {exc.name}, which is not installed: {INSTALL_HINT}") from exc

from seqnlp import __version__
from seqnlp.explain import DEFAULT_STEPS, explain
from seqnlp.explain.explanation import MAX_STEPS
from seqnlp.http_guard import ConnectionLimits, make_server
from seqnlp.model import count_parameters
from seqnlp.predict import DEFAULT_BATCH_SIZE, DEFAULT_PRECISION, Classifier
from seqnlp.runtime import ThreadControl
from seqnlp.config import is_thread_setting
from seqnlp.threads import usable_cpus

log = logging.getLogger(__name__)

ROUTES = "GET /health, GET /v1/model, POST /v1/predict, POST /v1/explain"
PREDICT_FIELDS = ("texts", "text", "top_k", "return_probabilities", "min_confidence")
EXPLAIN_FIELDS = ("texts", "text", "label", "steps", "occlusion")
EXPLAIN_MAX_TEXTS = 16  # texts per /v1/explain request: each costs a batch of ``steps`` forward and backward passes


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; larger requests get 413 before any inference runs."""

    max_batch: int = 256  # texts per request
    max_text_chars: int = 20_000  # characters per text (the tokenizer keeps max_length tokens anyway)
    max_body_bytes: int = 1 << 20  # request body, checked on Content-Length and again while reading
    body_timeout: float = 30.0  # seconds for the whole body to arrive once the headers have (more: 408)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name == "body_timeout":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                    raise ConfigError(f"body_timeout must be a positive number of seconds, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, not {value!r}")


class ApiError(Exception):
    """A request the API refuses: answered as ``{"error": message}`` with this status."""

    def __init__(self, status_code: int, message: str, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers


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
    body_timeout: float = Limits.body_timeout,
    device: str = "auto",
    num_threads: int | str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: str = DEFAULT_PRECISION,
    min_confidence: Optional[float] = None,
) -> Starlette:
    """The ASGI app serving ``model`` (a Classifier, or a run directory to load).

    ``min_confidence`` is the abstention threshold of requests that do not give their own (None: never abstain).

    ``device``, ``batch_size`` and ``precision`` are how a run directory is loaded (``Classifier.load``); a
    Classifier brings its own. ``num_threads`` sets torch's intra-op threads in the inference thread, replacing a
    Classifier's own setting: N, or ``auto``: at most ``default_threads()``, the fastest count timed over the
    requests (docs/performance.md); None keeps the Classifier's setting (a run directory: torch's). Mount the result anywhere (``Mount("/sentiment", app=create_app(...))``), or serve it with
    ``run_server``.
    """
    limits = Limits(max_batch, max_text_chars, max_body_bytes, body_timeout)
    if not is_thread_setting(num_threads):
        raise ConfigError(f"num_threads must be auto or a positive integer, not {num_threads!r}")
    clf = model if isinstance(model, Classifier) else Classifier.load(model, device=device, batch_size=batch_size,
                                                                       precision=precision, num_threads=None)
    if num_threads is not None:
        clf.thread_control = ThreadControl(num_threads, clf.device, max_threads=default_threads())
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise ConfigError(f"min_confidence must be between 0 and 1, not {min_confidence!r}")
    api = _Api(clf, limits, min_confidence)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("serving %s: labels %s; POST /v1/predict, /v1/explain", clf.run_dir or "a classifier", ", ".join(clf.label_names))
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
            Route("/v1/explain", api.explain, methods=["POST"]),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.classifier = clf
    app.state.limits = limits
    app.state.min_confidence = min_confidence
    return app


def run_server(app: Starlette, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
               access_log: bool = True, connections: Optional[ConnectionLimits] = None) -> None:
    """Serve ``app`` with uvicorn until SIGINT or SIGTERM, which finish the requests in flight, then stop.

    ``connections`` bounds what clients may hold (default: ``ConnectionLimits`` with the connection cap lowered to
    fit the open-file limit); see ``seqnlp.http_guard``.

    uvicorn raises the signal again once it has shut down: SIGTERM then ends the process as SIGTERM does. SIGINT
    should raise KeyboardInterrupt, but re-raised inside ``asyncio.run`` it only cancels a task that may already
    have finished, so whether it surfaces is a race; a SIGINT the server saw is therefore raised here, and the
    CLI exits 130 after Ctrl-C, as ``seqnlp train`` does.
    """
    server = make_server(app, host, port, log_level, access_log, connections)
    server.run()  # a port in use, or a failed start-up, is logged and exits 3 (uvicorn's STARTUP_FAILURE)
    if signal.SIGINT in server.signals:
        raise KeyboardInterrupt
    if not server.started:
        raise SeqnlpError(f"the server did not start on {host}:{port}; the log above says why")


class _Api:
    """The endpoints, sharing one classifier and the single thread it runs on (whose torch thread count the
    classifier's ``thread_control`` sets, call by call)."""

    def __init__(self, clf: Classifier, limits: Limits, min_confidence: Optional[float] = None) -> None:
        self.clf = clf
        self.limits = limits
        self.min_confidence = min_confidence
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
            "calibration": self._calibration(),
            "version": __version__,
        })

    def _calibration(self) -> dict[str, Any]:
        threshold = self.clf.calibration.threshold
        return {"temperature": self.clf.calibration.temperature, "min_confidence": self.min_confidence,
                "decision": None if threshold is None else {
                    "positive_label": self.clf.label_names[threshold.positive], "threshold": threshold.threshold}}

    async def predict(self, request: Request) -> JSONResponse:
        payload = _parse_json(await self._read_body(request))
        texts, single, top_k, probabilities, min_confidence = self._validate(payload)
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self.executor, lambda: self.clf.predict(
            texts, top_k=top_k, probabilities=probabilities, min_confidence=min_confidence))
        return JSONResponse({"prediction": results[0]} if single else {"predictions": results})

    async def explain(self, request: Request) -> JSONResponse:
        payload = _parse_json(await self._read_body(request))
        texts, single = self._texts(payload, EXPLAIN_FIELDS, EXPLAIN_MAX_TEXTS,
                                    "each explanation runs a batch of steps forward and backward")
        label, steps = payload.get("label"), payload.get("steps", DEFAULT_STEPS)
        occlusion = payload.get("occlusion", True)
        if label is not None and label not in self.clf.label_names:
            raise ApiError(422, f'"label" must be one of {", ".join(self.clf.label_names)}, not {_short(label)}')
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise ApiError(422, f'"steps" must be an integer from 1 to {MAX_STEPS}, not {_short(steps)}')
        if not isinstance(occlusion, bool):
            raise ApiError(422, f'"occlusion" must be true or false, not {_short(occlusion)}')
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(self.executor, lambda: explain(
            self.clf, texts, label=label, steps=steps, with_occlusion=occlusion))
        results = [e.to_dict() for e in found]
        return JSONResponse({"explanation": results[0]} if single else {"explanations": results})

    async def _read_body(self, request: Request) -> bytes:
        """The body of a JSON POST: Content-Type application/json, within max_body_bytes and body_timeout."""
        content_type = request.headers.get("content-type", "")
        media = content_type.split(";")[0].strip().lower()
        if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
            raise ApiError(415, f"Content-Type must be application/json, not {_short(content_type or 'none')}")
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"request body of {int(declared):,} bytes is over the limit of {limit:,} (max_body_bytes)")
        try:
            return await asyncio.wait_for(self._read_chunks(request, limit), self.limits.body_timeout)
        except asyncio.TimeoutError:
            raise ApiError(408, f"the request body did not arrive within {self.limits.body_timeout:g} s "
                                "(body_timeout)", headers={"Connection": "close"}) from None
        except ClientDisconnect:
            log.info("a client disconnected before sending the whole request body")
            raise ApiError(400, "the client disconnected before sending the whole body") from None

    @staticmethod
    async def _read_chunks(request: Request, limit: int) -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body is over the limit of {limit:,} bytes (max_body_bytes)")
            chunks.append(chunk)
        return b"".join(chunks)

    def _validate(self, payload: Any) -> tuple[list[str], bool, Optional[int], bool, Optional[float]]:
        """(texts, whether one "text" was given, top_k, return_probabilities, min_confidence), or an ApiError
        naming the field."""
        texts, single = self._texts(payload, PREDICT_FIELDS, self.limits.max_batch, "max_batch")
        top_k = payload.get("top_k")
        num_labels = len(self.clf.label_names)
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_labels):
            raise ApiError(422, f'"top_k" must be an integer from 1 to {num_labels} (the number of labels), '
                                f"not {_short(top_k)}")
        probabilities = payload.get("return_probabilities", False)
        if not isinstance(probabilities, bool):
            raise ApiError(422, f'"return_probabilities" must be true or false, not {_short(probabilities)}')
        min_confidence = payload.get("min_confidence", self.min_confidence)
        number = isinstance(min_confidence, (int, float)) and not isinstance(min_confidence, bool)
        if min_confidence is not None and not (number and 0 <= min_confidence <= 1):
            raise ApiError(422, f'"min_confidence" must be a number from 0 to 1, not {_short(min_confidence)}')
        return texts, single, top_k, probabilities, min_confidence

    def _texts(self, payload: Any, fields: tuple[str, ...], most: int, limit: str) -> tuple[list[str], bool]:
        """The request's texts and whether one "text" was given; an ApiError for unknown fields or bad texts."""
        if not isinstance(payload, dict):
            raise ApiError(422, f'body must be a JSON object such as {{"texts": ["..."]}}, not {_json_type(payload)}')
        unknown = [key for key in payload if key not in fields]
        if unknown:
            raise ApiError(422, f"unknown field {_short(unknown[0])}; fields: {', '.join(fields)}")
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
            if len(texts) > most:
                raise ApiError(413, f'"texts" has {len(texts):,} texts, over the limit of {most:,} per request '
                                    f"({limit})")
            names = [f"texts[{i}]" for i in range(len(texts))]
        for name, text in zip(names, texts):
            if not isinstance(text, str):
                raise ApiError(422, f'"{name}" must be a string, not {_json_type(text)} {_short(text)}')
            if len(text) > self.limits.max_text_chars:
                raise ApiError(413, f'"{name}" has {len(text):,} characters, over the limit of '
                                    f"{self.limits.max_text_chars:,} (max_text_chars)")
        return texts, single


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
    return JSONResponse({"error": exc.message}, status_code=exc.status_code, headers=exc.headers)


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
