"""``seqnlp.hub.push``: a local export of exactly what would be uploaded, and the upload itself against a fake Hub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from seqnlp.checkpoint import CARD_FILE, CHECKPOINT_DIR
from seqnlp.errors import CheckpointError, ConfigError, SeqnlpError
from seqnlp.hub import publishable_files, push


class FakeApi:
    """Records what HfApi would have been asked to do; ``fail`` is raised by create_commit."""

    calls: list[tuple[str, Any]] = []
    fail: BaseException | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def create_repo(self, repo_id: str, **kwargs: Any) -> str:
        FakeApi.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def create_commit(self, repo_id: str, operations: list, **kwargs: Any) -> Any:
        if FakeApi.fail is not None:
            raise FakeApi.fail
        contents = {}
        for op in operations:
            source = op.path_or_fileobj
            contents[op.path_in_repo] = source if isinstance(source, bytes) else Path(source).read_bytes()
        FakeApi.calls.append(("create_commit", {"repo_id": repo_id, "files": contents, **kwargs}))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> type[FakeApi]:
    import huggingface_hub
    from huggingface_hub import constants

    FakeApi.calls, FakeApi.fail = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return FakeApi


def test_checkpoints_and_hidden_files_stay_home(toy_run: Path) -> None:
    files = publishable_files(toy_run)
    assert (toy_run / CHECKPOINT_DIR).is_dir()  # the toy run has resumable state...
    assert not any(f.startswith(CHECKPOINT_DIR) for f in files)  # ...which is not published
    assert {"config.yaml", "labels.json", "tokenizer.json", "model.safetensors", "results.json", "data.json"} <= set(files)
    assert CARD_FILE not in files  # rendered for the repository instead


def test_to_dir_writes_exactly_the_publishable_files(toy_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "export"
    result = push(toy_run, "someone/toy-lstm", to_dir=target)
    written = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert written == result.files == sorted(publishable_files(toy_run) + [CARD_FILE])
    assert (target / "model.safetensors").read_bytes() == (toy_run / "model.safetensors").read_bytes()
    card = (target / CARD_FILE).read_text()
    assert "hf download someone/toy-lstm" in card and "`checkpoints/`" not in card


def test_to_dir_refuses_a_folder_that_holds_files(toy_run: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not an empty directory"):
        push(toy_run, "someone/x", to_dir=tmp_path / "full")


def test_upload_is_one_commit_with_the_same_files(toy_run: Path, tmp_path: Path, fake_hub: type[FakeApi]) -> None:
    result = push(toy_run, "someone/toy-lstm", private=True, revision="dev", message="first")
    exported = push(toy_run, "someone/toy-lstm", to_dir=tmp_path / "export")
    (_, repo), (_, commit) = fake_hub.calls
    assert repo == {"repo_id": "someone/toy-lstm", "private": True, "exist_ok": True, "repo_type": "model"}
    assert commit["revision"] == "dev" and commit["commit_message"] == "first"
    assert sorted(commit["files"]) == exported.files == result.files
    assert commit["files"][CARD_FILE] == (tmp_path / "export" / CARD_FILE).read_bytes()
    assert result.url == "https://huggingface.co/someone/toy-lstm/commit/abc"


def test_keep_card_sends_the_run_readme(toy_run: Path, tmp_path: Path) -> None:
    result = push(toy_run, "someone/toy-lstm", to_dir=tmp_path / "export", keep_card=True)
    assert CARD_FILE in result.files
    assert (tmp_path / "export" / CARD_FILE).read_text() == (toy_run / CARD_FILE).read_text()


def test_offline_is_one_clear_line(toy_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # tests/conftest.py sets HF_HUB_OFFLINE=1 anyway
    with pytest.raises(SeqnlpError, match=r"offline mode is on \(HF_HUB_OFFLINE=1\).*--to-dir DIR") as info:
        push(toy_run, "someone/toy-lstm")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("error", "message"), [
    ("unauthorized", "not logged in, or the token cannot write there"),
    ("network", "cannot reach the Hub (ConnectionResetError: reset)"),
    ("refused", "the Hub refused the upload to someone/toy-lstm: Bad request"),
])
def test_hub_failures_say_what_to_do(toy_run: Path, fake_hub: type[FakeApi], error: str, message: str) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    status = 401 if error == "unauthorized" else 400
    response = type("Response", (), {"status_code": status, "headers": {}, "request": None})()
    fake_hub.fail = {"unauthorized": HfHubHTTPError("401 Unauthorized", response=response),  # type: ignore[arg-type]
                     "network": ConnectionResetError("reset"),
                     "refused": HfHubHTTPError("Bad request", response=response)}[error]  # type: ignore[arg-type]
    with pytest.raises(SeqnlpError) as info:
        push(toy_run, "someone/toy-lstm")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_arguments(toy_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a Hub repository id"):
        push(toy_run, "not a repo id")
    with pytest.raises(CheckpointError, match="does not exist"):
        push(tmp_path / "nothing", "someone/x", to_dir=tmp_path / "out")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.yaml").write_text(json.dumps({}))
    with pytest.raises(CheckpointError, match="is missing labels.json"):
        push(tmp_path / "half", "someone/x", to_dir=tmp_path / "out")
