"""``seqnlp serve``: a real uvicorn server on loopback, hit over real HTTP with urllib.

Most tests share one server, run in a background thread on a port the OS picks, over the shared trained toy run;
the ``seqnlp serve`` tests start the command itself in a subprocess and stop it with SIGTERM or SIGINT. Every answer
is compared with ``Classifier.predict`` on the same texts, and every refusal with its status and message.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import pytest
import uvicorn
from click.testing import CliRunner

from seqnlp import __version__
from seqnlp.cli import main
from seqnlp.errors import ConfigError
from seqnlp.explain import explain
from seqnlp.model import count_parameters
from seqnlp.predict import Classifier
from seqnlp.serve import Limits, create_app

from tests.helpers import load_script

REPO_ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["this film was great", "awful", "", "the plot and the acting were really quite awful", "great great", "a"]
LIMITS = {"max_batch": 8, "max_text_chars": 200, "max_body_bytes": 4096}
TIMEOUT = 30  # seconds: a safety net for a hung server, never a measurement


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yields the base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not server.started:
        assert thread.is_alive(), "the server thread died while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "the server did not stop"


def call(url: str, method: str = "GET", body: Any = None, raw: Optional[bytes] = None,
         headers: Optional[dict[str, str]] = None) -> tuple[int, dict[str, str], Any]:
    """(status, headers, decoded JSON) of one request; ``body`` is sent as JSON, ``raw`` as it is."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    if data is not None and headers is None:
        headers = {"Content-Type": "application/json"}  # a POST without it is refused with 415
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), json.loads(exc.read())


@pytest.fixture(scope="module")
def clf(toy_run: Path) -> Classifier:
    return Classifier.load(toy_run, device="cpu")


@pytest.fixture(scope="module")
def base_url(clf: Classifier) -> Iterator[str]:
    with running(create_app(clf, num_threads=1, **LIMITS)) as url:
        yield url


# --- the endpoints ------------------------------------------------------------------------------------------


def test_health_says_the_model_is_loaded(base_url: str, clf: Classifier) -> None:
    status, headers, body = call(base_url + "/health")
    assert status == 200 and headers["content-type"] == "application/json"
    assert body == {"status": "ok", "model_loaded": True, "labels": ["neg", "pos"],
                    "cell": clf.config.model.cell, "version": __version__}


def test_model_metadata(base_url: str, clf: Classifier, toy_run: Path) -> None:
    status, _, body = call(base_url + "/v1/model")
    assert status == 200
    assert body["run_dir"] == str(toy_run)
    assert body["labels"] == clf.label_names and body["num_labels"] == 2
    assert body["parameters"] == count_parameters(clf.model)
    assert body["limits"] == {**LIMITS, "body_timeout": 30.0}
    assert body["device"] == "cpu" and body["version"] == __version__
    assert (body["batch_size"], body["precision"]) == (clf.batch_size, clf.precision) == (256, "fp32")
    config = body["config"]
    assert config["cell"] == clf.config.model.cell and config["hidden_size"] == clf.config.model.hidden_size
    assert config["vocab_size"] == clf.tokenizer.get_vocab_size()


def test_predict_a_batch_equals_classifier_predict(base_url: str, clf: Classifier) -> None:
    status, _, body = call(base_url + "/v1/predict", "POST", {"texts": TEXTS})
    assert status == 200
    assert body == {"predictions": clf.predict(TEXTS)}
    assert {p["label"] for p in body["predictions"][:2]} == {"pos", "neg"}  # the toy model tells them apart


def test_predict_options_equal_classifier_predict(base_url: str, clf: Classifier) -> None:
    request = {"texts": TEXTS, "top_k": 2, "return_probabilities": True}
    status, _, body = call(base_url + "/v1/predict", "POST", request)
    assert status == 200
    assert body == {"predictions": clf.predict(TEXTS, top_k=2, probabilities=True)}
    first = body["predictions"][0]
    assert set(first) == {"label", "score", "top_k", "probabilities"}
    assert first["probabilities"][first["label"]] == first["score"]


def test_predict_one_text(base_url: str, clf: Classifier) -> None:
    status, _, body = call(base_url + "/v1/predict", "POST", {"text": "awful film", "top_k": 1})
    assert status == 200
    assert body == {"prediction": clf.predict(["awful film"], top_k=1)[0]}


def test_min_confidence_abstains_as_classifier_predict_does(base_url: str, clf: Classifier) -> None:
    cut = float(np.median([p["score"] for p in clf.predict(TEXTS)]))
    status, _, body = call(base_url + "/v1/predict", "POST", {"texts": TEXTS, "min_confidence": cut})
    assert status == 200 and body == {"predictions": clf.predict(TEXTS, min_confidence=cut)}
    assert any(p["label"] is None and p["abstained"] for p in body["predictions"])


def test_the_servers_min_confidence_is_the_default_a_request_overrides(clf: Classifier) -> None:
    with running(create_app(clf, num_threads=1, min_confidence=1.0)) as url:
        _, _, strict = call(url + "/v1/predict", "POST", {"texts": TEXTS})
        _, _, lenient = call(url + "/v1/predict", "POST", {"texts": TEXTS, "min_confidence": 0})
        _, _, model = call(url + "/v1/model")
    assert all(p["abstained"] and p["label"] is None for p in strict["predictions"])
    assert lenient == {"predictions": clf.predict(TEXTS, min_confidence=0)}
    assert model["calibration"] == {"temperature": clf.calibration.temperature, "min_confidence": 1.0,
                                    "decision": None}
    with pytest.raises(ConfigError, match="min_confidence must be between 0 and 1"):
        create_app(clf, min_confidence=2.0)


def test_explain_equals_the_library(base_url: str, clf: Classifier) -> None:
    status, _, body = call(base_url + "/v1/explain", "POST", {"texts": TEXTS[:3], "steps": 8})
    assert status == 200
    expected = [e.to_dict() for e in explain(clf, TEXTS[:3], steps=8)]
    assert body["explanations"] == json.loads(json.dumps(expected))  # the same numbers, through JSON
    status, _, body = call(base_url + "/v1/explain", "POST", {"text": "awful film", "label": "pos",
                                                              "occlusion": False})
    assert status == 200
    one = body["explanation"]
    assert one["label"] == "pos" and one["occlusion"] is None and one["tokens"] == ["awful", "film"]
    assert abs(one["completeness"]["relative_gap"]) < 0.1


@pytest.mark.parametrize("request_body, status, fragment", [
    ({"texts": ["a"] * 17}, 413, '"texts" has 17 texts, over the limit of 16'),
    ({"text": "a", "steps": 0}, 422, '"steps" must be an integer from 1 to 1024, not 0'),
    ({"text": "a", "label": "spam"}, 422, '"label" must be one of neg, pos, not "spam"'),
    ({"text": "a", "occlusion": "no"}, 422, '"occlusion" must be true or false'),
    ({"text": "a", "top_k": 1}, 422, "unknown field \"top_k\"; fields: texts, text, label, steps, occlusion"),
])
def test_bad_explain_requests_name_the_field(base_url: str, request_body: dict, status: int, fragment: str) -> None:
    got, _, body = call(base_url + "/v1/explain", "POST", request_body)
    assert got == status and fragment in body["error"], body


def test_predict_at_every_limit_is_accepted(base_url: str, clf: Classifier) -> None:
    texts = ["great " * 33 + "ok"] * (LIMITS["max_batch"] - 1) + ["x" * LIMITS["max_text_chars"]]
    assert len(json.dumps({"texts": texts}).encode()) <= LIMITS["max_body_bytes"]
    status, _, body = call(base_url + "/v1/predict", "POST", {"texts": texts})
    assert status == 200
    assert body == {"predictions": clf.predict(texts)}


def test_concurrent_requests_each_get_their_own_answers(base_url: str, clf: Classifier) -> None:
    requests = [[TEXTS[(i + j) % len(TEXTS)] for j in range(1 + i % 5)] for i in range(16)]
    answers: dict[int, Any] = {}

    def send(i: int) -> None:
        answers[i] = call(base_url + "/v1/predict", "POST", {"texts": requests[i]})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    for i, texts in enumerate(requests):
        assert answers[i][0] == 200
        assert answers[i][2] == {"predictions": clf.predict(texts)}


# --- refusals -----------------------------------------------------------------------------------------------

BAD_REQUESTS = [
    # (id, raw body, status, fragments of the error message)
    ("empty-body", b"", 400, ["empty body"]),
    ("not-json", b'{"texts": [', 400, ["not valid JSON", "line 1 column"]),
    ("not-utf8", b'{"text": "\xff"}', 400, ["not UTF-8", "byte 10"]),
    ("nested-deeper-than-python-parses", b"[" * 2_000 + b"]" * 2_000, 400, ["not usable JSON", "recursion"]),
    ("top-level-list", b'["great"]', 422, ["JSON object", "not a list"]),
    ("top-level-string", b'"great"', 422, ["JSON object", "not a string"]),
    ("no-text-field", b"{}", 422, ['"texts"', '"text"']),
    ("both-fields", b'{"text": "a", "texts": ["b"]}', 422, ["not both"]),
    ("unknown-field", b'{"texts": ["a"], "topk": 2}', 422, ['unknown field "topk"', "top_k"]),
    ("texts-a-string", b'{"texts": "great"}', 422, ['"texts" must be a list', '"great"']),
    ("texts-an-object", b'{"texts": {"a": 1}}', 422, ['"texts" must be a list', "an object"]),
    ("texts-empty", b'{"texts": []}', 422, ['"texts" is an empty list']),
    ("texts-item-number", b'{"texts": ["a", 5]}', 422, ['"texts[1]" must be a string', "a number 5"]),
    ("texts-item-null", b'{"texts": [null]}', 422, ['"texts[0]" must be a string', "null"]),
    ("text-a-list", b'{"text": ["a"]}', 422, ['"text" must be a string', '["a"]']),
    ("top-k-zero", b'{"text": "a", "top_k": 0}', 422, ['"top_k"', "from 1 to 2", "not 0"]),
    ("top-k-over", b'{"text": "a", "top_k": 3}', 422, ['"top_k"', "not 3"]),
    ("top-k-bool", b'{"text": "a", "top_k": true}', 422, ['"top_k"', "not true"]),
    ("top-k-float", b'{"text": "a", "top_k": 1.5}', 422, ['"top_k"', "not 1.5"]),
    ("probabilities-not-bool", b'{"text": "a", "return_probabilities": "yes"}', 422,
     ['"return_probabilities"', '"yes"']),
    ("min-confidence-too-high", b'{"text": "a", "min_confidence": 1.5}', 422,
     ['"min_confidence" must be a number from 0 to 1, not 1.5']),
    ("too-many-texts", json.dumps({"texts": ["a"] * 9}).encode(), 413, ['"texts" has 9 texts', "limit of 8",
                                                                       "max_batch"]),
    ("text-too-long", json.dumps({"texts": ["a", "b" * 201]}).encode(), 413,
     ['"texts[1]" has 201 characters', "limit of 200", "max_text_chars"]),
    ("one-text-too-long", json.dumps({"text": "b" * 201}).encode(), 413, ['"text" has 201 characters']),
    ("body-too-large", json.dumps({"texts": ["a" * 150] * 30}).encode(), 413,
     ["bytes is over the limit of 4,096", "max_body_bytes"]),
]


@pytest.mark.parametrize("raw, status, fragments", [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_a_json_error_naming_the_field(base_url: str, raw: bytes, status: int,
                                                        fragments: list[str]) -> None:
    got, headers, body = call(base_url + "/v1/predict", "POST", raw=raw,
                              headers={"Content-Type": "application/json"})
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert set(body) == {"error"}
    for fragment in fragments:
        assert fragment in body["error"]
    assert len(body["error"]) < 200  # the value is quoted short, never the whole request echoed back


def test_a_chunked_body_over_the_limit_is_refused_while_reading(base_url: str) -> None:
    """Without a Content-Length the limit is enforced on the bytes as they arrive."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    chunks = [b'{"texts": ['] + [b'"' + b"a" * 100 + b'",'] * 60 + [b'"a"]}']
    conn.request("POST", "/v1/predict", body=iter(chunks), encode_chunked=True,
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 413
    assert "over the limit of 4,096 bytes" in body["error"]


def test_unknown_route_is_404(base_url: str) -> None:
    status, _, body = call(base_url + "/v1/classify", "POST", {"texts": ["a"]})
    assert status == 404
    assert body["error"].startswith("no route POST /v1/classify") and "POST /v1/predict" in body["error"]


@pytest.mark.parametrize("method, path, allowed", [("GET", "/v1/predict", "POST"), ("PUT", "/v1/predict", "POST"),
                                                   ("POST", "/health", "GET"), ("DELETE", "/v1/model", "GET")])
def test_wrong_method_is_405_with_allow(base_url: str, method: str, path: str, allowed: str) -> None:
    status, headers, body = call(base_url + path, method)
    assert status == 405
    assert allowed in headers["allow"]
    assert body == {"error": f"method {method} is not allowed on {path}; allowed: {headers['allow']}"}


# --- how inference runs -------------------------------------------------------------------------------------


class GatedClassifier(Classifier):
    """A Classifier whose predict waits for a gate, and records the threads it ran on and its overlap."""

    def __init__(self, clf: Classifier) -> None:
        super().__init__(clf.model, clf.tokenizer, clf.label_names, clf.config, clf.device, clf.run_dir)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.threads: set[str] = set()
        self.active = 0
        self.most_active = 0
        self._count = threading.Lock()

    def predict(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        with self._count:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        try:
            assert self.gate.wait(TIMEOUT)
            return super().predict(*args, **kwargs)
        finally:
            with self._count:
                self.active -= 1


def test_inference_runs_off_the_event_loop_one_call_at_a_time(clf: Classifier) -> None:
    gated = GatedClassifier(clf)
    with running(create_app(gated, num_threads=1)) as url:
        answers: list[Any] = []
        senders = [threading.Thread(target=lambda t=text: answers.append(
            call(url + "/v1/predict", "POST", {"text": t}))) for text in TEXTS[:4]]
        for sender in senders:
            sender.start()
        assert gated.entered.wait(TIMEOUT)
        # A prediction is running and three more are queued, yet the server still answers at once.
        assert call(url + "/health")[0] == 200
        gated.gate.set()
        for sender in senders:
            sender.join(TIMEOUT)
    assert sorted(a[2]["prediction"]["label"] for a in answers) == sorted(
        r["label"] for r in clf.predict(TEXTS[:4]))
    assert gated.most_active == 1
    assert len(gated.threads) == 1 and next(iter(gated.threads)).startswith("seqnlp-infer")


class BrokenClassifier(Classifier):
    def predict(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise RuntimeError("a bug")


def test_a_bug_is_a_json_500_without_details(clf: Classifier) -> None:
    broken = BrokenClassifier(clf.model, clf.tokenizer, clf.label_names, clf.config, clf.device, clf.run_dir)
    with running(create_app(broken)) as url:
        status, _, body = call(url + "/v1/predict", "POST", {"text": "a"})
        assert status == 500
        assert body == {"error": "internal error (RuntimeError); the server log has the details"}
        assert call(url + "/health")[0] == 200  # and the server carries on


@pytest.mark.parametrize("limit", ["max_batch", "max_text_chars", "max_body_bytes"])
@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_bad_limits_are_config_errors(clf: Classifier, limit: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"{limit} must be a positive integer, not {value!r}"):
        create_app(clf, **{limit: value})


def test_the_app_mounts_under_a_prefix_in_a_larger_app(clf: Classifier) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    site = Starlette(routes=[Mount("/sentiment", app=create_app(clf))])
    with running(site) as url:
        status, _, body = call(url + "/sentiment/v1/predict", "POST", {"texts": TEXTS[:2]})
        assert status == 200 and body == {"predictions": clf.predict(TEXTS[:2])}
        assert call(url + "/sentiment/health")[2]["status"] == "ok"
        assert call(url + "/sentiment/v1/nothing")[0] == 404


def test_create_app_loads_a_run_directory(toy_run: Path, clf: Classifier) -> None:
    app = create_app(toy_run, device="cpu", max_batch=3)
    assert app.state.limits == Limits(max_batch=3)
    assert app.state.classifier.label_names == clf.label_names
    tuned = create_app(toy_run, device="cpu", batch_size=7, precision="bf16").state.classifier
    assert (tuned.batch_size, tuned.precision) == (7, "bf16")


def test_serve_options_reach_the_classifier(toy_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seqnlp.serve

    served: list[Any] = []
    monkeypatch.setattr(seqnlp.serve, "run_server", lambda app, **options: served.append((app, options)))
    result = CliRunner().invoke(main, ["serve", str(toy_run), "--device", "cpu", "--threads", "1", "--batch-size", "5",
                                       "--precision", "bf16", "--port", "0"])
    assert result.exit_code == 0, result.output
    ((app, options),) = served
    assert (app.state.classifier.batch_size, app.state.classifier.precision) == (5, "bf16")
    assert options["port"] == 0 and options["host"] == "127.0.0.1"
    assert app.state.min_confidence is None
    result = CliRunner().invoke(main, ["serve", str(toy_run), "--device", "cpu", "--min-confidence", "0.9"])
    assert result.exit_code == 0, result.output
    assert served[-1][0].state.min_confidence == 0.9


def test_serve_fp16_on_the_cpu_is_a_one_line_error(toy_run: Path) -> None:
    result = CliRunner().invoke(main, ["serve", str(toy_run), "--device", "cpu", "--precision", "fp16"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith("Error: precision: fp16 needs a CUDA device")


# --- the command --------------------------------------------------------------------------------------------


def test_cli_defaults_are_the_library_defaults() -> None:
    params = {p.name: p.default for p in main.commands["serve"].params}
    for name, value in vars(Limits()).items():
        assert params[name] == value


def test_missing_extra_is_a_one_line_error(toy_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "seqnlp.serve")
    for name in [name for name in sys.modules if name.split(".")[0] in ("starlette", "uvicorn")]:
        monkeypatch.setitem(sys.modules, name, None)  # a None entry makes importing that module fail
    result = CliRunner().invoke(main, ["serve", str(toy_run), "--port", "0"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip() == (
        "Error: serving needs uvicorn, which is not installed: pip install 'seqnlp[serve]'")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# After shutting down, uvicorn raises the signal again: SIGTERM then ends the process as SIGTERM does (143 in a
# shell), and SIGINT (Ctrl-C) exits 130 through KeyboardInterrupt, as ``seqnlp train`` does.
@pytest.mark.slow  # a real server
@pytest.mark.parametrize("signum, exit_codes", [(signal.SIGTERM, {-signal.SIGTERM, 143}), (signal.SIGINT, {130})],
                         ids=["sigterm", "sigint"])
def test_seqnlp_serve_answers_then_stops_gracefully(toy_run: Path, clf: Classifier, signum: int,
                                                    exit_codes: set[int]) -> None:
    port = free_port()
    command = [sys.executable, "-m", "seqnlp", "serve", str(toy_run), "--port", str(port), "--threads", "1",
               "--max-batch", "4", "--device", "cpu"]
    proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120  # start-up imports torch: slow on a busy machine
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if call(url + "/health")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "seqnlp serve did not start"
                time.sleep(0.1)
        status, _, body = call(url + "/v1/predict", "POST", {"texts": TEXTS[:4]})
        assert status == 200
        expected = clf.predict(TEXTS[:4])
        assert [p["label"] for p in body["predictions"]] == [p["label"] for p in expected]
        assert [p["score"] for p in body["predictions"]] == pytest.approx([p["score"] for p in expected], rel=1e-6)
        assert call(url + "/v1/predict", "POST", {"texts": TEXTS[:5]})[0] == 413  # --max-batch 4
        assert call(url + "/v1/model")[2]["limits"]["max_batch"] == 4
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in exit_codes, stderr
    assert f"serving {toy_run}" in stderr
    assert f"stopped serving {toy_run}" in stderr  # the app's shutdown ran: requests drained, worker joined
    assert "Traceback" not in stderr
    assert '"POST /v1/predict HTTP/1.1" 200' in stdout  # the access log


# --- scripts/serve_benchmark.py (its numbers are output, never judged here) -------------------------------------


@pytest.mark.slow  # a real server
def test_benchmark_script_loads_the_server_and_checks_every_answer(base_url: str) -> None:
    script = load_script("serve_benchmark")
    texts = script.load_texts(None)
    assert len(texts) > 5000 and all(isinstance(t, str) for t in texts)  # the embedded SMS texts
    host, port = base_url.removeprefix("http://").split(":")
    row = script.run_setting(host, int(port), texts[:50], batch=2, concurrency=2, seconds=1, warmup=0)
    assert row["batch"] == 2 and row["concurrency"] == 2 and row["requests"] > 0
    assert row["texts_per_s"] == 2 * row["req_per_s"]
    assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]


def test_benchmark_script_refuses_a_request_the_server_refuses(base_url: str) -> None:
    import click

    host, port = base_url.removeprefix("http://").split(":")
    with pytest.raises(click.ClickException, match="status 413"):  # 9 texts: over this server's max_batch of 8
        load_script("serve_benchmark").run_setting(host, int(port), TEXTS * 2, batch=9, concurrency=1, seconds=1, warmup=0)


def test_benchmark_script_targets_loopback_only() -> None:
    result = CliRunner().invoke(load_script("serve_benchmark").main, ["--url", "http://10.0.0.1:8000", "--seconds", "1"])
    assert result.exit_code == 2
    assert "only http:// on loopback" in result.output
