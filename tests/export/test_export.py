"""Export: the masked forward equals the packed one, exported files (ONNX, TorchScript) give the trained model's
logits for any batch and time, the CLI writes a usable directory, and int8 models agree with fp32."""

from __future__ import annotations

import builtins
import itertools
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tokenizers import Tokenizer

from seqnlp.checkpoint import CALIBRATION_FILE, load_run, save_weights
from seqnlp.cli import main
from seqnlp.config import Config, config_from_dict, read_config_file
from seqnlp.errors import ConfigError, SeqnlpError
from seqnlp.export import export_run
from seqnlp.export.common import METADATA_FILE
from seqnlp.export.masked import MaskedRNNClassifier
from seqnlp.model import RNNClassifier
from seqnlp.predict import Classifier
from seqnlp.tokenizer import encode_texts, pad_id

TEXTS = [
    "this film was great",
    "awful",
    "",
    "the plot and the acting and the story were really quite awful with some very long scenes in it",
    "great great",
    "it is a movie with a plot",
    "awful awful awful the film",
    "a",
]
MATRIX = list(itertools.product(["rnn", "lstm", "gru"], [True, False], ["last", "mean", "max", "attention"]))


def batch_of(lengths: list[int], vocab: int, pad: int = 0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """ids [B, T] of random real tokens, padded on the right, and lengths [B]."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(2, vocab, (len(lengths), width), generator=generator)  # [B, T]
    lens = torch.tensor(lengths)  # [B]
    ids[torch.arange(width)[None, :] >= lens[:, None]] = pad
    return ids, lens


def matrix_run(base_run: Path, root: Path, cell: str, bidirectional: bool, pooling: str) -> Path:
    """A run directory with the trained run's tokenizer and labels and a two-layer model of this kind.

    Its weights are a fresh initialization scaled up, so tanh and gates saturate and padding leaks would show; the
    parity under test is the computation's, which does not depend on what the weights learned."""
    run = root / f"{cell}-{'bi' if bidirectional else 'uni'}-{pooling}"
    if (run / "model.safetensors").exists():
        return run
    run.mkdir(parents=True)
    for name in ("tokenizer.json", "labels.json"):
        shutil.copyfile(base_run / name, run / name)
    raw = read_config_file(base_run / "config.yaml")
    raw["model"].update(cell=cell, bidirectional=bidirectional, pooling=pooling, num_layers=2, head_hidden_size=8,
                        nonlinearity="relu" if (cell, pooling) == ("rnn", "mean") else "tanh")
    config: Config = config_from_dict(raw)
    config.save(run / "config.yaml")
    tokenizer = Tokenizer.from_file(str(run / "tokenizer.json"))
    torch.manual_seed(len(run.name))
    model = RNNClassifier(config.model, tokenizer.get_vocab_size(), 2, pad_id=pad_id(tokenizer))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.0 if config.model.nonlinearity == "relu" else 3.0)  # relu has no saturation to reach
    save_weights(model, run / "model.safetensors", tokenizer)
    return run


@pytest.fixture(scope="module")
def matrix_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("matrix")


def run_onnx(path: Path) -> Callable[[torch.Tensor, torch.Tensor], np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda ids, lengths: session.run(["logits"], {"input_ids": ids.numpy(), "lengths": lengths.numpy()})[0]


def run_torchscript(path: Path) -> Callable[[torch.Tensor, torch.Tensor], np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load announces torch.export
        loaded = torch.jit.load(str(path))

    def run(ids: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return loaded(ids, lengths).numpy()

    return run


RUNNERS = {"onnx": run_onnx, "torchscript": run_torchscript}
# Batches unlike the traced one (3 x 5): one text, one token, long, and every length different.
SHAPES = [[1], [1, 1], [9, 1, 30, 4, 17, 2, 30], [6, 6, 6], [45, 3]]


def assert_parity(run: Path, exported: Path, fmt: str) -> None:
    _, tokenizer, _, model = load_run(run)
    run_exported = RUNNERS[fmt](exported)
    for seed, lengths in enumerate(SHAPES):
        ids, lens = batch_of(lengths, tokenizer.get_vocab_size(), seed=seed)
        with torch.no_grad():
            expected = model(ids, lens).numpy()  # [B, C]: the packed model
        got = run_exported(ids, lens)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0, err_msg=f"{run.name} lengths {lengths}")


# --- the masked forward ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell,bidirectional,pooling", MATRIX)
@pytest.mark.parametrize("num_layers", [1, 3])
def test_masked_forward_equals_the_packed_one(cell: str, bidirectional: bool, pooling: str, num_layers: int) -> None:
    from seqnlp.config import ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, bidirectional=bidirectional, pooling=pooling, num_layers=num_layers,
                      embedding_dim=8, hidden_size=6)
    model = RNNClassifier(cfg, vocab_size=40, num_labels=3).eval()
    masked = MaskedRNNClassifier(model)
    for lengths in SHAPES:
        ids, lens = batch_of(lengths, 40)
        with torch.no_grad():
            torch.testing.assert_close(masked(ids, lens), model(ids, lens), atol=1e-6, rtol=0)


def test_masked_forward_ignores_what_the_padding_holds() -> None:
    from seqnlp.config import ModelConfig

    torch.manual_seed(0)
    model = RNNClassifier(ModelConfig(num_layers=2, embedding_dim=8, hidden_size=6, pooling="mean"), 40, 2).eval()
    masked = MaskedRNNClassifier(model)
    ids, lens = batch_of([7, 2, 4], 40)
    noisy = ids.clone()
    noisy[torch.arange(7)[None, :] >= lens[:, None]] = 39  # real-looking tokens where the padding was
    with torch.no_grad():
        torch.testing.assert_close(masked(noisy, lens), masked(ids, lens), atol=0, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_the_export_op_runs_its_layer_like_torch(cell: str) -> None:
    """seqnlp::recurrent_layer takes ONNX's weight layout; run eagerly it equals the torch layer it came from."""
    from seqnlp.export.onnx import _RecurrentOp

    torch.manual_seed(0)
    kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(cell, torch.nn.RNN)
    extra = {"nonlinearity": cell[4:]} if kind is torch.nn.RNN else {}
    rnn = kind(5, 4, batch_first=True, **extra)
    x = torch.randn(3, 6, 5)  # [B, T, F]
    with torch.no_grad():
        got, _ = _RecurrentOp(rnn)(x)
        torch.testing.assert_close(got, rnn(x)[0])


# --- exported files: parity with the packed model -----------------------------------------------------------------

@pytest.mark.parametrize("cell,bidirectional,pooling", MATRIX)
def test_torchscript_export_matches_the_packed_model(toy_run: Path, matrix_root: Path, tmp_path: Path, cell: str,
                                                      bidirectional: bool, pooling: str) -> None:
    run = matrix_run(toy_run, matrix_root, cell, bidirectional, pooling)
    result = export_run(run, format="torchscript", output=tmp_path / "model.pt")
    assert result.max_abs_diff < 1e-5
    assert_parity(run, result.model_file, "torchscript")


@pytest.mark.slow  # ONNX export (torch.export + onnxscript) and onnxruntime: about a second a case
@pytest.mark.parametrize("cell,bidirectional,pooling", MATRIX)
def test_onnx_export_matches_the_packed_model(toy_run: Path, matrix_root: Path, tmp_path: Path, cell: str,
                                              bidirectional: bool, pooling: str) -> None:
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    run = matrix_run(toy_run, matrix_root, cell, bidirectional, pooling)
    result = export_run(run, format="onnx", output=tmp_path)
    assert result.model_file == tmp_path / "model.onnx"
    assert result.max_abs_diff < 1e-5
    assert_parity(run, result.model_file, "onnx")


@pytest.mark.parametrize("fmt", [pytest.param("onnx", marks=pytest.mark.slow), "torchscript"])
def test_trained_run_exports_with_its_tokenizer_labels_and_metadata(toy_run: Path, tmp_path: Path, fmt: str) -> None:
    """The directory alone predicts what Classifier predicts: tokenizer.json + labels.json + the model file."""
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
    out = tmp_path / "exported"
    result = export_run(toy_run, format=fmt, output=out)
    assert {p.name for p in out.iterdir()} == {result.model_file.name, "tokenizer.json", "labels.json", METADATA_FILE}
    meta = json.loads((out / METADATA_FILE).read_text())
    assert [i["name"] for i in meta["inputs"]] == ["input_ids", "lengths"]
    assert meta["outputs"][0]["shape"] == ["batch", 2] and meta["labels"] == ["neg", "pos"]
    assert meta["pad_id"] == 0 and meta["max_length"] == 256 and meta["model_file"] == result.model_file.name
    assert meta["check"]["max_abs_logit_diff"] == result.max_abs_diff < 1e-5
    assert meta["calibration"]["temperature"] == Classifier.load(toy_run, device="cpu").calibration.temperature

    # Standalone use, as the README shows it: no seqnlp below this line.
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    labels = json.loads((out / "labels.json").read_text())
    ids = [enc.ids or [meta["empty_text_id"]] for enc in tokenizer.encode_batch(TEXTS)]
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    batch = np.full((len(ids), lengths.max()), meta["pad_id"], dtype=np.int64)
    for row, x in enumerate(ids):
        batch[row, : len(x)] = x
    logits = RUNNERS[fmt](result.model_file)(torch.from_numpy(batch), torch.from_numpy(lengths))

    clf = Classifier.load(toy_run, device="cpu")
    np.testing.assert_allclose(logits, clf.logits(TEXTS).numpy(), atol=1e-5, rtol=0)
    assert [labels[i] for i in logits.argmax(axis=1)] == [r["label"] for r in clf.predict(TEXTS)]


def test_the_export_divides_its_logits_by_the_runs_temperature(toy_run: Path, tmp_path: Path) -> None:
    """export.json tells the consumer: the model's softmax is the calibrated probability; the threshold is theirs."""
    run = Path(shutil.copytree(toy_run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints", "export")))
    (run / CALIBRATION_FILE).write_text(json.dumps({"temperature": 2.5, "decision": {
        "rule": "precision", "positive_label": "pos", "threshold": 0.7}}), encoding="utf-8")
    result = export_run(run, format="torchscript", output=tmp_path / "out")
    assert result.max_abs_diff < 1e-5  # against the packed model's logits divided by 2.5
    calibration = result.metadata["calibration"]
    assert calibration == {"temperature": 2.5, "applied_in_model": True, "fitted": True, "decision": {
        "positive_label": "pos", "threshold": 0.7, "about": calibration["decision"]["about"]}}
    clf = Classifier.load(run, device="cpu")
    encoded = [clf.tokenizer.encode(t).ids or [result.metadata["empty_text_id"]] for t in TEXTS[:2]]
    lengths = torch.tensor([len(x) for x in encoded])
    ids = torch.zeros(len(encoded), int(lengths.max()), dtype=torch.long)
    for row, x in enumerate(encoded):
        ids[row, : len(x)] = torch.tensor(x)
    logits = RUNNERS["torchscript"](result.model_file)(ids, lengths)
    np.testing.assert_allclose(torch.softmax(torch.as_tensor(logits), dim=1).numpy(), clf.predict_proba(TEXTS[:2]),
                               atol=1e-5)


def test_default_output_is_the_run_export_directory(toy_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(toy_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    result = export_run(run, format="torchscript")
    assert result.model_file == run / "export" / "model.pt"
    quantized = export_run(run, format="torchscript", quantize=True)
    assert quantized.model_file == run / "export" / "model.int8.pt" and result.model_file.exists()


# --- quantization -------------------------------------------------------------------------------------------------

def test_quantized_classifier_agrees_with_fp32_on_the_toy_task(toy_run: Path) -> None:
    fp32 = Classifier.load(toy_run, device="cpu")
    int8 = Classifier.load(toy_run, quantize=True)
    assert int8.quantized and int8.device == torch.device("cpu")
    kinds = {type(m).__module__ for m in int8.model.modules()}
    assert any(k.startswith("torch.ao.nn.quantized.dynamic") for k in kinds)
    assert [r["label"] for r in int8.predict(TEXTS)] == [r["label"] for r in fp32.predict(TEXTS)]
    np.testing.assert_allclose(int8.predict_proba(TEXTS), fp32.predict_proba(TEXTS), atol=0.05)


def test_quantized_torchscript_export_agrees_with_fp32(toy_run: Path, tmp_path: Path) -> None:
    result = export_run(toy_run, format="torchscript", output=tmp_path, quantize=True)
    assert result.quantized and result.model_file.name == "model.int8.pt"
    assert result.int8 == ["directions.0", "directions.1", "head.1"]  # both LSTM directions and the head
    assert_int8_agrees(toy_run, result.model_file, "torchscript")


def assert_int8_agrees(toy_run: Path, model_file: Path, fmt: str) -> None:
    """The int8 model's logits are near the fp32 model's and its predictions equal, on the toy texts."""
    _, tokenizer, _, model = load_run(toy_run)
    sequences = encode_texts(tokenizer, TEXTS)
    ids, lens = batch_of([len(s) for s in sequences], tokenizer.get_vocab_size())
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
    with torch.no_grad():
        expected = model(ids, lens).numpy()
    got = RUNNERS[fmt](model_file)(ids, lens)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert 0 < np.abs(got - expected).max() < 0.2  # int8 changes the logits a little, not the answers


def test_quantizing_a_plain_rnn_keeps_its_recurrence_in_float(toy_run: Path, matrix_root: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    run = matrix_run(toy_run, matrix_root, "rnn", True, "last")
    clf = Classifier.load(run, quantize=True)
    assert type(clf.model.encoder.rnn) is torch.nn.RNN
    assert "nn.RNN" in caplog.text and "encoder.rnn" in caplog.text


def test_quantize_needs_the_cpu(toy_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("seqnlp.predict.resolve_device", lambda name: torch.device("cuda"))
    with pytest.raises(ConfigError, match="CPU"):
        Classifier.load(toy_run, device="cuda", quantize=True)


@pytest.mark.slow  # a fresh interpreter
def test_quantize_alone_loads_no_export_format() -> None:
    """Classifier.load(quantize=True) imports seqnlp.export.quantize; that must not register the ONNX op or load
    the exporters: export_run imports the format it writes."""
    code = ("import sys, seqnlp.export.quantize, seqnlp.predict; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('seqnlp.export'))))")
    root = Path(__file__).resolve().parents[2]  # this checkout's seqnlp, not an installed one
    loaded = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == ["seqnlp.export", "seqnlp.export.common", "seqnlp.export.masked",
                                     "seqnlp.export.quantize"]


# --- CLI and errors -----------------------------------------------------------------------------------------------

def test_cli_export_writes_the_model_and_reports_the_check(toy_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "ts" / "clf.pt"
    result = CliRunner().invoke(main, ["export", str(toy_run), "--format", "torchscript", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and (out.parent / "tokenizer.json").is_file() and (out.parent / METADATA_FILE).is_file()
    assert f"Model: {out} (torchscript)" in result.output and "max |logit difference|" in result.output
    assert_parity(toy_run, out, "torchscript")


@pytest.mark.slow  # ONNX export and onnxruntime
def test_cli_export_quantized_onnx_agrees_with_fp32(toy_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    result = CliRunner().invoke(main, ["export", str(toy_run), "-o", str(tmp_path), "--quantize"])
    assert result.exit_code == 0, result.output
    model_file = tmp_path / "model.int8.onnx"
    assert f"Model: {model_file} (onnx, int8: " in result.output
    meta = json.loads((tmp_path / METADATA_FILE).read_text())
    assert meta["quantized"] is True and {"DynamicQuantizeLSTM", "MatMulInteger"} <= set(meta["int8"])
    assert_int8_agrees(toy_run, model_file, "onnx")


def test_cli_predict_quantize(toy_run: Path) -> None:
    result = CliRunner().invoke(main, ["predict", str(toy_run), "--quantize", "great film", "awful film"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["label"] for line in result.stdout.splitlines()] == ["pos", "neg"]


def test_unknown_format_is_a_usage_error_listing_the_choices(toy_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["export", str(toy_run), "--format", "tflite", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "'tflite' is not one of onnx, torchscript" in result.output and "Traceback" not in result.output
    with pytest.raises(ConfigError, match="onnx, torchscript"):
        export_run(toy_run, format="coreml")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("missing", ["onnx", "onnxscript", "onnxruntime"])
def test_missing_onnx_packages_name_the_extra(toy_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              missing: str) -> None:
    real_import = builtins.__import__

    def without(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == missing:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    result = CliRunner().invoke(main, ["export", str(toy_run), "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: ONNX export needs the {missing} package: pip install 'seqnlp[export]'"
    with pytest.raises(SeqnlpError, match=r"seqnlp\[export\]"):
        export_run(toy_run, format="onnx", output=tmp_path)


def test_missing_run_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["export", str(tmp_path / "nope"), "--format", "torchscript"])
    assert result.exit_code == 2 and result.output.startswith("Error: run directory")  # a usage error (issue 14)
    assert "Traceback" not in result.output


# --- the n-gram branch ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", [pytest.param("onnx", marks=pytest.mark.slow), "torchscript"])
def test_a_model_with_the_ngram_branch_exports_with_it(toy_run: Path, tmp_path: Path, fmt: str) -> None:
    """The branch is plain integer and embedding arithmetic: exported files give the packed model's logits."""
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
        pytest.importorskip("onnxruntime")
    run = tmp_path / "ngrams"
    run.mkdir()
    for name in ("tokenizer.json", "labels.json"):
        shutil.copyfile(toy_run / name, run / name)
    raw = read_config_file(toy_run / "config.yaml")
    raw["model"].update(ngram_orders=[1, 2, 3], ngram_buckets=101)
    config: Config = config_from_dict(raw)
    config.save(run / "config.yaml")
    tokenizer = Tokenizer.from_file(str(run / "tokenizer.json"))
    torch.manual_seed(0)
    model = RNNClassifier(config.model, tokenizer.get_vocab_size(), 2, pad_id=pad_id(tokenizer))
    torch.nn.init.normal_(model.ngrams.weight.weight)
    save_weights(model, run / "model.safetensors", tokenizer)
    result = export_run(run, format=fmt, output=tmp_path / "out")
    assert result.max_abs_diff < 1e-5
    assert_parity(run, result.model_file, fmt)
