"""The ``seqnlp`` command line: help, the train -> evaluate -> predict path, flag mapping and one-line errors.

Every command runs in-process through click's ``CliRunner``; one toy run, trained through the CLI, is shared by
the tests that only read it. Subprocesses are used only where the process itself is the point (what ``--help``
imports, ``python -m seqnlp``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from tests import helpers
from tests.helpers import toy_rows, write_csv

from seqnlp.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_FILES = ("config.yaml", "labels.json", "tokenizer.json", "model.safetensors", "metrics.jsonl", "results.json")

# The best epoch is picked on validation loss (not accuracy, which is 1.0 from the first epoch on), so the kept
# weights are confident.
def tiny_set_args() -> list[str]:
    return helpers.tiny_set_args(train__monitor="loss")


def invoke(*args: str, input: str | None = None) -> Result:
    """Run ``seqnlp ARGS`` in-process; the result keeps stdout and stderr apart."""
    return CliRunner().invoke(main, list(args), input=input)


def assert_one_line_error(result: Result, exit_code: int, *fragments: str) -> str:
    """A user error: the given exit code, no traceback, and an ``Error:`` line naming each fragment."""
    output = result.output
    assert result.exit_code == exit_code, output
    assert "Traceback" not in output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]
    assert result.stdout == ""
    return error_lines[0]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toy-data")
    return {
        "train": write_csv(root / "train.csv", toy_rows(200, seed=0)),
        "test": write_csv(root / "test.csv", toy_rows(40, seed=1)),
    }


@pytest.fixture(scope="module")
def cli_train(tmp_path_factory: pytest.TempPathFactory, toy_files: dict[str, Path]) -> tuple[Path, Result]:
    """One toy run trained through ``seqnlp train``: its directory and the CLI result."""
    run_dir = tmp_path_factory.mktemp("cli-run") / "run"
    result = invoke(
        "-q", "train",
        "--data-files", f"train={toy_files['train']}", "--data-files", f"test={toy_files['test']}",
        "--output-dir", str(run_dir), "--epochs", "5", "--batch-size", "16", "--device", "cpu", "--seed", "3",
        *tiny_set_args(),
    )
    assert result.exit_code == 0, result.output
    return run_dir, result


@pytest.fixture(scope="module")
def run_dir(cli_train: tuple[Path, Result]) -> Path:
    return cli_train[0]


# --- help ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["train"], ["baseline"], ["evaluate"], ["predict"], ["compare"], ["diagnose"],
                                     ["serve"], ["export"], ["explain"], ["report"], ["calibrate"]],
                         ids=["main", "train", "baseline", "evaluate", "predict", "compare", "diagnose", "serve",
                              "export", "explain", "report", "calibrate"])
def test_help_exits_0_and_shows_examples(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert "Examples:" in result.stdout
    assert "seqnlp " + (command[0] if command else "train") in result.stdout  # the examples are real commands


def test_the_module_docstring_lists_every_command() -> None:
    import seqnlp.cli

    for name in main.commands:
        assert f"seqnlp {name} " in (seqnlp.cli.__doc__ or ""), name


def test_short_help_option() -> None:
    result = invoke("train", "-h")
    assert result.exit_code == 0
    assert "--print-config" in result.stdout


def test_version() -> None:
    from seqnlp import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


@pytest.mark.slow  # a real seqnlp process
def test_help_does_not_import_torch_or_datasets() -> None:
    code = (
        "import sys\n"
        "from seqnlp.cli import main\n"
        "for args in (['--help'], ['compare', '--help'], ['diagnose', '--help'], ['serve', '--help']):\n"
        "    try:\n"
        "        main(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'datasets', 'starlette', 'uvicorn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('light')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Examples:" in proc.stdout
    assert proc.stdout.rstrip().endswith("light")


@pytest.mark.slow  # a real seqnlp process
def test_python_m_seqnlp_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "seqnlp", "--help"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    for command in ("train", "evaluate", "predict"):
        assert command in proc.stdout


# --- train -> evaluate -> predict -----------------------------------------------------------------------------


def test_train_writes_a_complete_run(cli_train: tuple[Path, Result]) -> None:
    run_dir, result = cli_train
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    assert f"Run directory: {run_dir}" in result.stdout
    assert "\ntest: accuracy 1.0000" in result.stdout  # its own test file: no "carved"
    assert "\nvalidation, carved from train, 20%: accuracy" in result.stdout  # the tiny settings carve 20%
    assert json.loads((run_dir / "labels.json").read_text()) == ["neg", "pos"]
    epochs = json_lines((run_dir / "metrics.jsonl").read_text())
    assert [record["epoch"] for record in epochs] == [1, 2, 3, 4, 5]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["hidden_size"] == 16  # --set reached the saved config
    assert saved["train"]["epochs"] == 5 and saved["train"]["batch_size"] == 16 and saved["seed"] == 3
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test"]["accuracy"] == 1.0


def test_evaluate_prints_metrics_per_class_table_and_confusion_matrix(run_dir: Path) -> None:
    result = invoke("evaluate", str(run_dir))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Split: test (40 examples)" in out
    assert any(line.split() == ["accuracy", "1.0000"] for line in out.splitlines())
    assert any(line.split() == ["AUROC", "1.0000"] for line in out.splitlines())
    assert ["label", "precision", "recall", "f1", "auroc", "support"] in [line.split() for line in out.splitlines()]
    assert "Confusion matrix" in out
    # Each label has two rows: per class (precision, recall, f1, auroc, support), then in the confusion matrix,
    # whose header names the predicted labels.
    class_rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["neg"], ["pos"])]
    assert class_rows == [
        ["neg", "1.0000", "1.0000", "1.0000", "1.0000", "20"],
        ["pos", "1.0000", "1.0000", "1.0000", "1.0000", "20"],
        ["neg", "pos"],
        ["neg", "20", "0"],
        ["pos", "0", "20"],
    ]


def test_evaluate_json_is_one_object(run_dir: Path) -> None:
    result = invoke("evaluate", str(run_dir), "--json")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["split"] == "test"
    assert report["accuracy"] == 1.0
    assert report["num_examples"] == 40
    assert set(report["per_class"]) == {"neg", "pos"}
    assert report["confusion_matrix"] == [[20, 0], [0, 20]]


def test_evaluate_on_explicit_data_files(run_dir: Path, tmp_path: Path) -> None:
    other = write_csv(tmp_path / "held_out.csv", toy_rows(30, seed=7))
    result = invoke("evaluate", str(run_dir), "--data-files", f"test={other}", "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"] == "test"
    assert report["num_examples"] == 30  # the given file, not the run's own 40-row test split
    assert report["accuracy"] == 1.0


def test_evaluate_unknown_split_lists_the_splits(run_dir: Path) -> None:
    result = invoke("evaluate", str(run_dir), "--split", "nope")
    assert_one_line_error(result, 1, "'nope'", "train", "test", "validation")


def test_predict_texts_as_arguments(run_dir: Path) -> None:
    result = invoke("predict", str(run_dir), "text with great", "text with awful")
    assert result.exit_code == 0, result.output
    predictions = json_lines(result.stdout)
    assert [p["label"] for p in predictions] == ["pos", "neg"]
    for p in predictions:
        assert set(p) == {"label", "score"}
        assert 0.5 < p["score"] <= 1.0


def test_predict_top_k_lists_every_label(run_dir: Path) -> None:
    result = invoke("predict", str(run_dir), "--top-k", "2", "what a great movie")
    assert result.exit_code == 0, result.output
    (prediction,) = json_lines(result.stdout)
    top = prediction["top_k"]
    assert len(top) == 2
    assert [t["label"] for t in top] == ["pos", "neg"]
    assert top[0]["score"] >= top[1]["score"]
    assert top[0]["score"] == pytest.approx(prediction["score"])
    assert sum(t["score"] for t in top) == pytest.approx(1.0, abs=1e-5)


def test_predict_plain_text_file(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "texts.txt"
    path.write_text("the plot was great\nthe acting was awful\na great great film\n", encoding="utf-8")
    result = invoke("predict", str(run_dir), "--input", str(path))
    assert result.exit_code == 0, result.output
    assert [p["label"] for p in json_lines(result.stdout)] == ["pos", "neg", "pos"]


def test_predict_jsonl_file_with_text_column(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    records = [{"id": 1, "review": "it was awful"}, {"id": 2, "review": "really great story"}]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")  # a blank line is skipped
    result = invoke("predict", str(run_dir), "--input", str(path), "--text-column", "review")
    assert result.exit_code == 0, result.output
    assert [p["label"] for p in json_lines(result.stdout)] == ["neg", "pos"]


def test_predict_csv_file(run_dir: Path, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "inputs.csv", [
        {"id": "a", "text": "great, really great"},  # the comma is quoted in the file
        {"id": "b", "text": "the movie was awful"},
    ])
    result = invoke("predict", str(run_dir), "--input", str(path))
    assert result.exit_code == 0, result.output
    assert [p["label"] for p in json_lines(result.stdout)] == ["pos", "neg"]


def test_predict_from_stdin(run_dir: Path) -> None:
    result = invoke("predict", str(run_dir), "--input", "-", input="some awful film\nthe story is great\n")
    assert result.exit_code == 0, result.output
    assert [p["label"] for p in json_lines(result.stdout)] == ["neg", "pos"]


def test_predict_keeps_input_order_and_count(run_dir: Path) -> None:
    texts = [row["text"] for row in toy_rows(25, seed=11)]
    result = invoke("predict", str(run_dir), *texts)
    assert result.exit_code == 0, result.output
    assert [p["label"] for p in json_lines(result.stdout)] == [row["label"] for row in toy_rows(25, seed=11)]


def test_predict_tsv_input_is_read_without_quoting(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "inputs.tsv"
    path.write_text('text\tid\n"a great start\t1\nawful awful\t2\ngreat\t3\n', encoding="utf-8")
    result = invoke("predict", str(run_dir), "--input", str(path))
    assert result.exit_code == 0, result.output
    assert [p["label"] for p in json_lines(result.stdout)] == ["pos", "neg", "pos"]  # one prediction per row


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve"])
def test_inference_options_default_to_the_library_defaults(command: str) -> None:
    from seqnlp.predict import DEFAULT_BATCH_SIZE, DEFAULT_PRECISION

    params = {p.name: p.default for p in main.commands[command].params}
    assert (params["batch_size"], params["precision"]) == (DEFAULT_BATCH_SIZE, DEFAULT_PRECISION)
    assert "--precision" in invoke(command, "--help").stdout


def test_predict_batch_size_changes_nothing_but_the_batching(run_dir: Path) -> None:
    texts = [row["text"] for row in toy_rows(9, seed=12)]
    default = invoke("predict", str(run_dir), "--top-k", "2", *texts)
    one_by_one = invoke("predict", str(run_dir), "--top-k", "2", "--batch-size", "1", *texts)
    assert default.exit_code == one_by_one.exit_code == 0, one_by_one.output
    for a, b in zip(json_lines(default.stdout), json_lines(one_by_one.stdout), strict=True):
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-6)


def test_predict_and_evaluate_in_bf16(run_dir: Path) -> None:
    fp32 = json_lines(invoke("predict", str(run_dir), "great film", "awful film").stdout)
    result = invoke("predict", str(run_dir), "--precision", "bf16", "great film", "awful film")
    assert result.exit_code == 0, result.output
    bf16 = json_lines(result.stdout)
    assert [p["label"] for p in bf16] == [p["label"] for p in fp32] == ["pos", "neg"]
    assert [p["score"] for p in bf16] == pytest.approx([p["score"] for p in fp32], abs=2e-2)
    report = invoke("evaluate", str(run_dir), "--precision", "bf16", "--batch-size", "7", "--json")
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["accuracy"] == 1.0


def test_predict_and_evaluate_take_a_thread_count_or_auto(run_dir: Path) -> None:
    one = invoke("predict", str(run_dir), "--threads", "1", "great film", "awful film")
    auto = invoke("predict", str(run_dir), "--threads", "auto", "great film", "awful film")
    assert one.exit_code == auto.exit_code == 0, one.output + auto.output
    assert [p["label"] for p in json_lines(one.stdout)] == [p["label"] for p in json_lines(auto.stdout)]
    assert invoke("evaluate", str(run_dir), "--threads", "2", "--json").exit_code == 0
    bad = invoke("predict", str(run_dir), "--threads", "0", "great film")
    assert bad.exit_code == 2 and "'0' is not auto or an integer >= 1" in bad.stderr


def test_evaluate_json_names_the_task(run_dir: Path) -> None:
    assert json.loads(invoke("evaluate", str(run_dir), "--json").stdout)["task"] == "single_label"


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_fp16_off_cuda_is_a_one_line_config_error(run_dir: Path, command: str) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("fp16 runs on a GPU")
    extra = ["great"] if command == "predict" else []
    assert_one_line_error(invoke(command, str(run_dir), "--precision", "fp16", *extra), 2, "fp16 needs a CUDA device")


def test_an_unknown_precision_lists_the_choices(run_dir: Path) -> None:
    result = invoke("predict", str(run_dir), "--precision", "fp8", "great")
    assert result.exit_code == 2 and "fp32" in result.stderr and "bf16" in result.stderr
    assert invoke("evaluate", str(run_dir), "--batch-size", "0").exit_code == 2


# --- flags map onto the config ----------------------------------------------------------------------------------


def print_config(*args: str) -> dict[str, Any]:
    result = invoke("train", "--print-config", *args)
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout)


def test_print_config_reflects_every_flag() -> None:
    config = print_config("--cell", "gru", "--layers", "2", "--unidirectional", "--epochs", "3", "--batch-size", "8",
                          "--seed", "5", "--set", "model.pooling=mean")
    assert config["model"]["cell"] == "gru"
    assert config["model"]["num_layers"] == 2
    assert config["model"]["bidirectional"] is False
    assert config["model"]["pooling"] == "mean"
    assert config["train"]["epochs"] == 3
    assert config["train"]["batch_size"] == 8
    assert config["seed"] == 5


def test_decision_flags_set_the_calibration_section() -> None:
    assert print_config("--target-precision", "0.9")["calibration"] == {
        "temperature": True, "threshold": "precision", "target_precision": 0.9, "positive_label": None}
    assert print_config("--threshold", "f1")["calibration"]["threshold"] == "f1"
    assert_one_line_error(invoke("train", "--threshold", "f1", "--target-precision", "0.9", "--print-config"), 2,
                          "--target-precision sets --threshold precision; drop --threshold f1")


def test_a_target_precision_is_tuned_saved_and_decides(tmp_path: Path, toy_files: dict[str, Path]) -> None:
    run = tmp_path / "run"
    result = invoke("-q", "train", "--data-files", f"train={toy_files['train']}", "--data-files",
                    f"test={toy_files['test']}", "--output-dir", str(run), "--epochs", "3", "--batch-size", "16",
                    "--target-precision", "0.95", "--set", "calibration.positive_label=neg", *tiny_set_args())
    assert result.exit_code == 0, result.output
    decision = json.loads((run / "calibration.json").read_text())["decision"]
    assert decision["rule"] == "precision" and decision["positive_label"] == "neg" and decision["reached"]
    assert decision["precision"] >= 0.95 and decision["target_precision"] == 0.95
    evaluated = json.loads(invoke("evaluate", str(run), "--json").stdout)
    assert evaluated["calibration"]["decision"] == {"positive_label": "neg", "threshold": decision["threshold"]}
    assert "neg when its probability >= " in invoke("evaluate", str(run)).stdout


def test_predict_min_confidence_abstains(run_dir: Path) -> None:
    texts = ("great film", "the")
    plain = [json.loads(line) for line in invoke("predict", str(run_dir), *texts).stdout.splitlines()]
    cut = (plain[0]["score"] + plain[1]["score"]) / 2
    assert plain[0]["score"] > plain[1]["score"]  # a cue word is surer than none
    lines = invoke("predict", str(run_dir), *texts, "--min-confidence", str(cut)).stdout.splitlines()
    sure, unsure = (json.loads(line) for line in lines)
    assert sure == {**plain[0], "abstained": False}
    assert unsure == {"label": None, "abstained": True, "best": plain[1]["label"], "score": plain[1]["score"]}
    assert invoke("predict", str(run_dir), "a", "--min-confidence", "1.5").exit_code == 2


def test_print_config_defaults_are_untouched_without_flags() -> None:
    default = print_config()
    assert default["model"]["cell"] == "lstm"
    assert default["model"]["bidirectional"] is True
    assert default["seed"] == 13
    assert default["data"]["data_files"] == {}


def test_print_config_data_and_run_flags(tmp_path: Path) -> None:
    config = print_config("--data-files", "train=a.csv", "--data-files", "train=b.csv", "--data-files", "test=c.csv",
                          "--text-column", "title", "--text-column", "body", "--label-column", "topic",
                          "--lr", "0.05", "--precision", "bf16", "--device", "cpu", "--bidirectional",
                          "--output-dir", str(tmp_path / "out"))
    assert config["data"]["data_files"] == {"train": ["a.csv", "b.csv"], "test": ["c.csv"]}
    assert config["data"]["text_columns"] == ["title", "body"]
    assert config["data"]["label_column"] == "topic"
    assert config["train"]["lr"] == 0.05
    assert config["train"]["precision"] == "bf16"
    assert config["train"]["device"] == "cpu"
    assert config["model"]["bidirectional"] is True
    assert config["output_dir"] == str(tmp_path / "out")
    assert not (tmp_path / "out").exists()  # --print-config writes nothing


def test_data_files_merge_into_a_config_files_splits(tmp_path: Path) -> None:
    """Issue 17: --data-files train=X on a config with train and validation files kept only X, and validation was
    then carved from train. Each split is merged now; a recipe's Hub dataset gives way to local files."""
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\n")
    path = tmp_path / "config.yaml"
    path.write_text("data:\n  data_files: {train: train.tsv, validation: dev.tsv}\n")
    config = print_config("--config", str(path), "--data-files", "train=mine.tsv")
    assert config["data"]["data_files"] == {"train": ["mine.tsv"], "validation": str(tmp_path / "dev.tsv")}
    recipe = Path(__file__).resolve().parents[1] / "configs" / "sst2.yaml"
    config = print_config("--config", str(recipe), "--data-files", "train=t.tsv", "--data-files", "validation=d.tsv",
                          "--set", "data.load_kwargs.quoting=3")
    assert config["data"]["dataset"] is None and config["data"]["config_name"] is None
    assert config["data"]["data_files"] == {"train": ["t.tsv"], "validation": ["d.tsv"]}
    assert config["data"]["load_kwargs"] == {"quoting": 3}


def test_config_file_then_set_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"cell": "rnn", "hidden_size": 32, "bidirectional": True, "pooling": "last"},
        "train": {"epochs": 4, "batch_size": 4},
        "seed": 1,
    }), encoding="utf-8")
    config = print_config("--config", str(path), "--set", "model.cell=lstm", "--set", "train.epochs=6",
                          "--set", "model.pooling=max", "--set", "model.pooling=attention",
                          "--set", "model.bidirectional=true", "--cell", "gru", "--unidirectional")
    assert config["model"]["hidden_size"] == 32  # from the file only
    assert config["train"]["batch_size"] == 4  # from the file only
    assert config["seed"] == 1  # from the file only
    assert config["train"]["epochs"] == 6  # --set beats the file
    assert config["model"]["pooling"] == "attention"  # the later --set wins
    assert config["model"]["cell"] == "gru"  # the flag beats --set and the file
    assert config["model"]["bidirectional"] is False  # the flag beats --set and the file


def test_json_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": {"cell": "gru"}, "train": {"lr": 0.003}}), encoding="utf-8")
    config = print_config("-c", str(path))
    assert config["model"]["cell"] == "gru"
    assert config["train"]["lr"] == 0.003


def test_set_values_are_parsed_as_yaml() -> None:
    config = print_config("-s", "train.lr=1e-3", "-s", "train.patience=null", "-s", "data.text_columns=[a, b]",
                          "-s", "tokenizer.lowercase=false")
    assert config["train"]["lr"] == 0.001
    assert config["train"]["patience"] is None
    assert config["data"]["text_columns"] == ["a", "b"]
    assert config["tokenizer"]["lowercase"] is False


# --- errors: one line, non-zero exit, no traceback -------------------------------------------------------------


def test_unknown_set_key() -> None:
    line = assert_one_line_error(invoke("train", "--print-config", "--set", "model.hiden_size=3"), 2,
                                 "model.hiden_size")
    assert "hidden_size" in line  # and says what the valid keys are


def test_unknown_top_level_set_key() -> None:
    assert_one_line_error(invoke("train", "--print-config", "--set", "modle.cell=gru"), 2, "modle")


def test_bad_choice_value_lists_choices() -> None:
    line = assert_one_line_error(invoke("train", "--print-config", "--set", "model.cell=transformer"), 2,
                                 "model.cell", "transformer")
    for choice in ("rnn", "lstm", "gru"):
        assert choice in line


def test_bad_choice_flag_lists_choices() -> None:
    result = invoke("train", "--print-config", "--cell", "transformer")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    for choice in ("rnn", "lstm", "gru"):
        assert choice in result.stderr


def test_bad_value_type_names_the_key() -> None:
    assert_one_line_error(invoke("train", "--print-config", "--set", "model.hidden_size=big"), 2,
                          "model.hidden_size", "big")


def test_set_without_equals() -> None:
    assert_one_line_error(invoke("train", "--print-config", "--set", "model.cell"), 2, "model.cell", "key=value")


def test_data_files_without_split() -> None:
    assert_one_line_error(invoke("train", "--print-config", "--data-files", "train.csv"), 2, "train.csv", "SPLIT=PATH")


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert_one_line_error(invoke("train", "--print-config", "--config", str(missing)), 2, str(missing))


def test_missing_data_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    result = invoke("train", "--data-files", f"train={missing}", "--output-dir", str(tmp_path / "run"))
    assert_one_line_error(result, 1, str(missing), "'train'")


def test_wrong_text_column_lists_the_columns(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "train.csv", toy_rows(20))
    result = invoke("-q", "train", "--data-files", f"train={data}", "--text-column", "sentence",
                    "--output-dir", str(tmp_path / "run"), "--device", "cpu")
    line = assert_one_line_error(result, 1, "'sentence'")
    assert "text, label" in line  # the columns that do exist


def test_evaluate_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("seed: 1\n", encoding="utf-8")
    result = invoke("evaluate", str(tmp_path))
    line = assert_one_line_error(result, 1, str(tmp_path), "model.safetensors")
    assert "labels.json" in line and "tokenizer.json" in line
    assert "config.yaml" not in line.split("missing", 1)[1]  # only the files that are really missing


def test_evaluate_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    """A usage error (exit 2, as the README says), found before anything heavy is imported (issue 14)."""
    assert_one_line_error(invoke("evaluate", str(tmp_path / "nowhere")), 2, "nowhere", "does not exist")


def test_predict_without_texts_is_a_usage_error(run_dir: Path) -> None:
    result = invoke("predict", str(run_dir))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "Usage:" in result.stderr
    assert "no texts" in result.stderr
    assert result.stdout == ""


def test_predict_texts_and_input_together_is_a_usage_error(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "texts.txt"
    path.write_text("great\n", encoding="utf-8")
    result = invoke("predict", str(run_dir), "great", "--input", str(path))
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_predict_top_k_above_the_number_of_labels(run_dir: Path) -> None:
    result = invoke("predict", str(run_dir), "--top-k", "5", "great")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "--top-k" in result.stderr and "2 labels" in result.stderr
    assert result.stdout == ""


def test_predict_top_k_zero_is_rejected(run_dir: Path) -> None:
    result = invoke("predict", str(run_dir), "--top-k", "0", "great")
    assert result.exit_code == 2
    assert "--top-k" in result.stderr


def test_predict_jsonl_bad_line_names_the_line(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "great"}\n\n{"text": oops}\n{"text": "awful"}\n', encoding="utf-8")
    assert_one_line_error(invoke("predict", str(run_dir), "--input", str(path)), 1, "bad.jsonl", "line 3")


def test_predict_jsonl_missing_field_names_the_field(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"review": "great"}\n', encoding="utf-8")
    assert_one_line_error(invoke("predict", str(run_dir), "--input", str(path)), 1, "line 1", "text", "review")


def test_predict_csv_missing_column_lists_the_columns(run_dir: Path, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "inputs.csv", [{"id": "1", "review": "great"}])
    assert_one_line_error(invoke("predict", str(run_dir), "--input", str(path)), 1, "'text'", "id, review")


def test_predict_missing_input_file(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("predict", str(run_dir), "--input", str(tmp_path / "nope.txt"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "nope.txt" in result.stderr


def test_predict_non_utf8_input_is_a_one_line_error(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café great\nawful\n".encode("latin-1"))
    assert_one_line_error(invoke("predict", str(run_dir), "--input", str(path)), 1, "latin1.txt")


def test_predict_empty_input(run_dir: Path) -> None:
    """Empty standard input prints nothing and exits 0: a pipeline over an empty shard must not fail (issue 14)."""
    for args in (["--input", "-"], ["-"]):
        result = invoke("predict", str(run_dir), *args, input="")
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", ""), repr(result.exception)


def test_train_refuses_an_existing_run_without_overwrite(run_dir: Path, toy_files: dict[str, Path]) -> None:
    before = (run_dir / "model.safetensors").read_bytes()
    result = invoke("train", "--data-files", f"train={toy_files['train']}", "--output-dir", str(run_dir))
    assert_one_line_error(result, 2, str(run_dir), "--overwrite")  # a usage error (issue 14)
    assert (run_dir / "model.safetensors").read_bytes() == before  # the run is left alone


def test_debug_lets_the_exception_propagate(tmp_path: Path) -> None:
    from seqnlp.errors import CheckpointError, ConfigError

    result = invoke("--debug", "evaluate", str(tmp_path))
    assert isinstance(result.exception, CheckpointError)
    assert result.exit_code != 0
    assert "model.safetensors" in str(result.exception)

    result = invoke("--debug", "train", "--print-config", "--set", "model.hiden_size=3")
    assert isinstance(result.exception, ConfigError)
    assert result.exc_info is not None and result.exc_info[2] is not None  # a traceback to show


@pytest.mark.slow  # a real seqnlp process
def test_debug_shows_a_traceback_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "seqnlp", "--debug", "train", "--print-config", "--set", "x.y=1"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "ConfigError" in proc.stderr


def test_quiet_shows_no_progress_bars(run_dir: Path, tmp_path: Path) -> None:
    fresh = write_csv(tmp_path / "fresh.csv", toy_rows(30, seed=21))  # new file: nothing cached, every step runs
    result = invoke("-q", "evaluate", str(run_dir), "--data-files", f"test={fresh}", "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_examples"] == 30
    assert "examples/s" not in result.stderr
    assert "%|" not in result.stderr


# --- compare and diagnose -----------------------------------------------------------------------------------

MARKER = "synthetic:marker?distance=2&prefix=2&vocab=4&train=60&validation=20&test=20"
SMALL = ("--set", "model.embedding_dim=4", "--set", "model.hidden_size=4", "--set", "train.num_threads=1",
         "--set", "train.device=cpu")


def test_compare_writes_the_report_and_prints_the_table(tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = invoke("-q", "compare", "--dataset", MARKER, "--cell", "gru", "--grid", "model.pooling=last,max",
                    "--epochs", "1", "--seeds", "2", "--in-process", "--diagnose", "--diagnose-examples", "8",
                    "-o", str(report), *SMALL)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| cell | pooling | test accuracy |")
    assert [line.split("|")[2].strip() for line in lines[2:4]] == ["last", "max"]
    assert " ± " in lines[2]  # two seeds: mean and spread
    assert lines[-1].startswith(f"Report: {report}")
    for name in ("report.md", "results.csv", "results.json", "runs.csv", "curves.csv",
                 "diagnostics/gradient_profile.csv", "diagnostics/saturation.csv", "diagnostics/diagnostics.md"):
        assert (report / name).is_file(), name
    assert sorted(p.name for p in (report / "runs").iterdir()) == ["00-cell-gru_pooling-last", "01-cell-gru_pooling-max"]
    assert sorted(p.name for p in (report / "runs" / "00-cell-gru_pooling-last").iterdir()) == ["seed-13", "seed-14"]
    assert "## Gradient flow and saturation" in (report / "report.md").read_text(encoding="utf-8")


def test_compare_jobs_is_auto_or_a_count(tmp_path: Path) -> None:
    bad = invoke("compare", "--jobs", "none")
    assert bad.exit_code == 2 and "'none' is not auto or an integer >= 1" in bad.stderr
    clash = invoke("compare", "--dataset", MARKER, "--in-process", "--jobs", "2", "-o", str(tmp_path / "r"), *SMALL)
    assert_one_line_error(clash, 2, "needs isolated runs")


def test_compare_cells_given_twice_is_a_usage_error() -> None:
    result = invoke("compare", "--cell", "rnn", "--grid", "model.cell=gru")
    assert result.exit_code == 2
    assert "not both" in result.stderr and result.stdout == ""


def test_compare_bad_grid_key_is_a_one_line_error() -> None:
    assert_one_line_error(invoke("compare", "--grid", "model.hiden_size=4,8"), 2, "model.hiden_size", "hidden_size")


def test_compare_bad_synthetic_task_is_a_one_line_error() -> None:
    assert_one_line_error(invoke("compare", "--dataset", "synthetic:marker?far=3"), 2, "'far'", "distance")


def test_diagnose_trained_and_initial_weights_of_a_run(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("-q", "diagnose", str(run_dir), "--weights", "both", "-n", "8", "-o", str(tmp_path / "diag"))
    assert result.exit_code == 0, result.output
    assert "| lstm | init |" in result.stdout and "| lstm | trained |" in result.stdout
    assert result.stdout.splitlines()[0].startswith("| model | weights | grad at 0 |")
    assert (tmp_path / "diag" / "gradient_profile.csv").is_file()
    assert result.stdout.splitlines()[-1].startswith(f"Diagnostics: {tmp_path / 'diag'}")


def test_diagnose_fresh_models_of_a_config(tmp_path: Path) -> None:
    result = invoke("-q", "diagnose", "--dataset", MARKER, "--cell", "rnn", "--cell", "lstm", "-n", "8",
                    "-o", str(tmp_path / "diag"), *SMALL)
    assert result.exit_code == 0, result.output
    assert "| rnn | init |" in result.stdout and "| lstm | init | forget gate |" in result.stdout
    assert "gru" not in result.stdout


def test_diagnose_runs_and_a_config_together_is_a_usage_error(run_dir: Path) -> None:
    result = invoke("diagnose", str(run_dir), "--cell", "rnn")
    assert result.exit_code == 2 and "not both" in result.stderr


def test_diagnose_trained_weights_without_runs_is_a_usage_error() -> None:
    result = invoke("diagnose", "--weights", "trained", "--dataset", MARKER)
    assert result.exit_code == 2 and "needs run directories" in result.stderr
