"""A run directory you did not write (issue 14, items 4-6): sizes checked before anything is allocated, dtypes and
finiteness before anything is used, checkpoint paths and metadata before anything is followed or restored.

Every case is a copy of the trained toy run with one file altered as a hostile or careless hand would, loaded
through the library (``load_run``, ``resume``) and, where a user would meet it, through the CLI.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import seqnlp.checkpoint
from seqnlp.checkpoint import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LAST_POINTER,
    OPTIMIZER_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    last_checkpoint,
    load_run,
)
from seqnlp.cli import main
from seqnlp.config import ModelConfig
from seqnlp.errors import CheckpointError
from seqnlp.model import RNNClassifier, count_parameters, min_parameters
from seqnlp.tensorfile import read_header


@pytest.fixture
def run(toy_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(toy_run, tmp_path / "run"))


def rewrite_weights(path: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    tensors = load_file(str(path))
    edit(tensors)
    metadata = {k: str(v) for k, v in read_header(path)[1].items()}
    save_file(tensors, str(path), metadata=metadata)


def edit_config(run: Path, **model: Any) -> None:
    raw = yaml.safe_load((run / CONFIG_FILE).read_text(encoding="utf-8"))
    raw["model"].update(model)
    (run / CONFIG_FILE).write_text(yaml.safe_dump(raw), encoding="utf-8")


def cli_error(*args: object) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    return line


# --- item 4: sizes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("shape", [dict(num_layers=1, bidirectional=False), dict(num_layers=3, bidirectional=True),
                                   dict(num_layers=2, bidirectional=False, head_hidden_size=7, pooling="attention")])
def test_min_parameters_is_a_lower_bound_of_the_built_model(cell: str, shape: dict[str, Any]) -> None:
    cfg = ModelConfig(cell=cell, embedding_dim=6, hidden_size=5, dropout=0.0, **shape)
    model = RNNClassifier(cfg, 40, 3)
    assert 0 < min_parameters(cfg, 40, 3) <= count_parameters(model)
    assert count_parameters(model) - min_parameters(cfg, 40, 3) < 60  # biases of the head and attention only


@pytest.mark.parametrize("model", [dict(hidden_size=30000), dict(hidden_size=8000), dict(embedding_dim=60000),
                                   dict(num_layers=64, hidden_size=4096)])
def test_a_config_asking_for_a_huge_model_is_refused_before_it_is_built(run: Path, model: dict[str, Any],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The config says gigabytes, the weights file holds kilobytes: refused with no model built."""
    edit_config(run, **model)
    monkeypatch.setattr(seqnlp.checkpoint, "RNNClassifier", lambda *a, **k: pytest.fail("the model was built"))
    with pytest.raises(CheckpointError, match=r"does not fit the model in config\.yaml: that model has at least "
                                              r"[\d,]+ parameters, the file holds [\d,]+"):
        load_run(run)


def test_a_config_with_an_absurd_layer_count_is_refused_by_its_range(run: Path) -> None:
    edit_config(run, num_layers=100000)  # was a hang
    with pytest.raises(CheckpointError, match=r"config\.yaml: model\.num_layers: 100000 must be >= 1 and <= 64"):
        load_run(run)


# --- item 5: dtypes and values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, name", [(torch.float64, "F64"), (torch.int8, "I8"), (torch.float16, "F16")])
def test_weights_of_another_dtype_are_refused(run: Path, dtype: torch.dtype, name: str) -> None:
    """They were cast silently by load_state_dict."""
    rewrite_weights(run / WEIGHTS_FILE, lambda t: t.update({"embedding.weight": t["embedding.weight"].to(dtype)}))
    line = cli_error("predict", run, "great")
    assert line == (f"Error: weights file {run / WEIGHTS_FILE}: embedding.weight is stored as {name}, not F32 as "
                    "seqnlp saves it; a converted or altered file is not loaded (it would be cast silently)")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(run: Path, value: float) -> None:
    """NaN weights made predict print {"score": NaN} (not JSON) and serve answer 500 to every request."""
    def poison(tensors: dict[str, torch.Tensor]) -> None:
        tensors["head.1.weight"][0, :3] = value

    rewrite_weights(run / WEIGHTS_FILE, poison)
    for args in (["predict", run, "great"], ["-q", "evaluate", run], ["serve", run, "--port", "0"],
                 ["export", run, "--format", "torchscript"]):
        line = cli_error(*args)
        assert line == (f"Error: weights file {run / WEIGHTS_FILE}: head.1.weight holds 3 non-finite values (NaN or "
                        "inf); these weights cannot predict anything")


def test_a_header_declaring_more_than_the_file_holds_is_corrupt(run: Path) -> None:
    path = run / WEIGHTS_FILE
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    header["embedding.weight"]["shape"] = [10**9, 16]
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + size:])
    with pytest.raises(CheckpointError, match="its header declares [\\d,]+ bytes of tensors and the file holds"):
        load_run(run)


def test_a_foreign_tensor_name_is_refused(run: Path) -> None:
    rewrite_weights(run / WEIGHTS_FILE, lambda t: t.update({"extra.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="does not fit the model in config.yaml: unexpected extra.weight"):
        load_run(run)


# --- item 6: checkpoint paths ------------------------------------------------------------------------------------------


def resume_error(run: Path) -> str:
    from seqnlp.training import resume

    with pytest.raises(CheckpointError) as info:
        resume(run, progress=False)
    assert "\n" not in str(info.value)
    return str(info.value)


def pointer(run: Path) -> Path:
    return run / CHECKPOINT_DIR / LAST_POINTER


@pytest.mark.parametrize("content", ['{"dir": ".."}', '{"dir": "../.."}', '{"dir": "/etc"}', '[1, 2]', '"step"',
                                     '{"dir": "evil"}', '{"dir": 5}', '{}'])
def test_last_json_cannot_lead_out_of_the_checkpoints(run: Path, content: str) -> None:
    pointer(run).write_text(content, encoding="utf-8")
    assert resume_error(run).startswith(f'{pointer(run)} must be {{"dir": "step-NNNNNNNN"}}, naming a checkpoint '
                                        "directory beside it, not ")


def test_a_checkpoint_that_is_a_link_is_not_followed(run: Path, tmp_path: Path) -> None:
    """checkpoints/evil -> elsewhere was read as if it were a checkpoint."""
    root = run / CHECKPOINT_DIR
    name = json.loads(pointer(run).read_text(encoding="utf-8"))["dir"]
    elsewhere = Path(shutil.move(str(root / name), tmp_path / "elsewhere"))
    (root / name).symlink_to(elsewhere, target_is_directory=True)
    assert resume_error(run) == f"{root / name} is a symbolic link; a checkpoint is read only from its own directory"
    (root / name).unlink()
    (root / name).mkdir()
    (root / name / WEIGHTS_FILE).symlink_to(elsewhere / WEIGHTS_FILE)
    assert "is a symbolic link" in resume_error(run)


def test_last_checkpoint_accepts_the_real_one(run: Path) -> None:
    name = json.loads(pointer(run).read_text(encoding="utf-8"))["dir"]
    assert last_checkpoint(run) == run / CHECKPOINT_DIR / name


# --- item 6: checkpoint metadata ---------------------------------------------------------------------------------------


def checkpoint_dir(run: Path) -> Path:
    return run / CHECKPOINT_DIR / json.loads(pointer(run).read_text(encoding="utf-8"))["dir"]


def edit_state(run: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = checkpoint_dir(run) / STATE_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def edit_optimizer(run: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    path = checkpoint_dir(run) / OPTIMIZER_FILE
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


STATE_EDITS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "unknown-loop-key": (lambda d: d["loop"].update(bogus=1), "unknown key 'loop.bogus'"),
    "bad-rng": (lambda d: d["rng_by_rank"][0].update(python=[1, 2]), "rng_by_rank[0]: 'python' is not a python"),
    "bad-torch-rng-length": (lambda d: d["rng_by_rank"][0].update(torch=[1, 2, 3]), "cannot be restored"),
    "no-param-groups": (lambda d: d.pop("optimizer_param_groups"), "has no optimizer_param_groups list"),
    "one-group": (lambda d: d["optimizer_param_groups"].pop(), "optimizer_param_groups holds 1 groups; the optimizer "
                                                               "has 2"),
    "unknown-setting": (lambda d: d["optimizer_param_groups"][0].update(momentum=0.9),
                        "optimizer_param_groups[0]: unknown setting 'momentum'"),
    "setting-of-another-kind": (lambda d: d["optimizer_param_groups"][1].update(lr="fast"),
                                "optimizer_param_groups[1]: lr is fast, which is not a setting of the kind"),
    "non-integer-index": (lambda d: d["optimizer_param_groups"][0]["params"].__setitem__(0, "a"),
                          "'params' lists the indices of its"),
    "index-twice": (lambda d: d["optimizer_param_groups"][1]["params"].__setitem__(0, 0),
                    "optimizer_param_groups names a parameter index twice"),
}


@pytest.mark.parametrize("case", list(STATE_EDITS))
def test_damaged_checkpoint_metadata_is_one_line(run: Path, case: str) -> None:
    """Each of these was a 37-49-line traceback."""
    edit, message = STATE_EDITS[case]
    edit_state(run, edit)
    assert message in resume_error(run)


OPTIMIZER_EDITS: dict[str, tuple[Callable[[dict[str, torch.Tensor]], Any], str]] = {
    "wrong-shape": (lambda t: t.update({"0.exp_avg": t["0.exp_avg"][:-1]}),
                    r"0\.exp_avg is F32 \[\d+, \d+\], but parameter 0 is F32 \[\d+, \d+\]"),
    "non-integer-key": (lambda t: t.update({"x.exp_avg": t.pop("0.exp_avg")}),
                        "tensor 'x.exp_avg' is not '<parameter index>.<name>'"),
    "index-out-of-range": (lambda t: t.update({"99.exp_avg": t["0.exp_avg"].clone()}),
                           "tensor '99.exp_avg' is not"),
    "float64-moment": (lambda t: t.update({"1.exp_avg_sq": t["1.exp_avg_sq"].double()}), "1.exp_avg_sq is F64"),
    "step-not-a-scalar": (lambda t: t.update({"0.step": torch.zeros(3)}), "0.step must be a float scalar"),
    "nan-moment": (lambda t: t["2.exp_avg"].fill_(float("nan")), "2.exp_avg holds"),
}


@pytest.mark.parametrize("case", list(OPTIMIZER_EDITS))
def test_damaged_optimizer_tensors_are_one_line(run: Path, case: str) -> None:
    """A moment of the wrong shape was accepted and surfaced as "non-finite loss at step 17"."""
    edit, message = OPTIMIZER_EDITS[case]
    edit_optimizer(run, edit)
    assert re.search(message, resume_error(run))


def test_an_intact_checkpoint_still_resumes(run: Path) -> None:
    from seqnlp.training import resume

    result = resume(run, progress=False)
    assert result.best_epoch >= 1
