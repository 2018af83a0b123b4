"""``seqnlp push``: a run directory to the Hugging Face Hub, or exactly what would be uploaded to a local folder.

What travels is the run minus its resumable training state (``checkpoints/``: optimizer moments a user of the
model never needs) and hidden temporary files, with the model card rendered again for the repository (its
download lines name it). ``to_dir`` writes those very files to a folder and touches no network: to inspect an
upload before making it, to upload later from another machine, or to publish elsewhere. Uploading goes through
``huggingface_hub`` (a dependency of datasets): one commit with every file; the token comes from
``hf auth login`` or ``HF_TOKEN``. Offline, or without a token, the error says so in one line.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from seqnlp.checkpoint import CARD_FILE, CHECKPOINT_DIR, REQUIRED_FILES
from seqnlp.errors import CheckpointError, ConfigError, SeqnlpError
from seqnlp.modelcard import render_model_card

log = logging.getLogger(__name__)

NOT_UPLOADED = (CHECKPOINT_DIR,)  # resumable training state: large, and of no use to a user of the model


@dataclass
class PushResult:
    """What ``push`` did: the files (paths inside the repository) and where they went."""

    repo_id: str
    files: list[str] = field(default_factory=list)
    url: Optional[str] = None  # the Hub commit, when uploaded
    to_dir: Optional[Path] = None  # the folder, when exported


def publishable_files(run_dir: Path) -> list[str]:
    """The run's files that are uploaded, as paths relative to ``run_dir`` (sorted; README.md is rendered apart)."""
    files = []
    for path in sorted(run_dir.rglob("*")):
        parts = path.relative_to(run_dir).parts
        if path.is_file() and parts[0] not in NOT_UPLOADED and not any(p.startswith(".") for p in parts) \
                and parts != (CARD_FILE,):
            files.append("/".join(parts))
    return files


def push(run_dir: str | Path, repo_id: str, to_dir: Optional[str | Path] = None, private: bool = False,
         revision: Optional[str] = None, message: Optional[str] = None, keep_card: bool = False) -> PushResult:
    """Upload ``run_dir`` to the Hub model repository ``repo_id`` (created when missing), or with ``to_dir``
    write exactly those files there instead. ``revision`` is the branch; ``private`` applies to a new repository;
    ``keep_card`` sends the run's README.md as it is (edited by hand, say) instead of rendering it again."""
    run_dir = Path(run_dir)
    check_repo_id(repo_id)
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    if not run_dir.is_dir() or missing:
        what = "does not exist" if not run_dir.is_dir() else f"is missing {', '.join(missing)}"
        raise CheckpointError(f"cannot push {run_dir}: it {what}")
    files = publishable_files(run_dir)
    if keep_card and not (run_dir / CARD_FILE).is_file():
        raise CheckpointError(f"cannot keep the model card of {run_dir}: it has no {CARD_FILE}")
    card = ((run_dir / CARD_FILE).read_text(encoding="utf-8") if keep_card
            else render_model_card(run_dir, repo_id=repo_id, files=files))
    if to_dir is not None:
        return _export(run_dir, files, card, repo_id, Path(to_dir))
    return _upload(run_dir, files, card, repo_id, private, revision, message or f"Upload {run_dir.name} with seqnlp")


def check_repo_id(repo_id: str) -> None:
    """A ConfigError for a repository id the Hub would refuse (it must be NAME or OWNER/NAME)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise ConfigError(f"REPO_ID {repo_id!r} is not a Hub repository id: use NAME or OWNER/NAME, made of "
                          "letters, digits, '-', '_' and '.'") from None


def _export(run_dir: Path, files: list[str], card: str, repo_id: str, target: Path) -> PushResult:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"--to-dir {target} exists and is not an empty directory; choose a new one")
    if target.resolve() == run_dir.resolve() or run_dir.resolve() in target.resolve().parents:
        raise ConfigError(f"--to-dir {target} is inside the run directory {run_dir}; choose a folder outside it")
    target.mkdir(parents=True, exist_ok=True)
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run_dir / name, target / name)
    (target / CARD_FILE).write_text(card, encoding="utf-8")
    log.info("wrote %d files to %s", len(files) + 1, target)
    return PushResult(repo_id, sorted(files + [CARD_FILE]), to_dir=target)


def _upload(run_dir: Path, files: list[str], card: str, repo_id: str, private: bool, revision: Optional[str],
            message: str) -> PushResult:
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    if constants.HF_HUB_OFFLINE:
        raise SeqnlpError(f"cannot push to the Hub: offline mode is on (HF_HUB_OFFLINE=1); write the files with "
                          f"seqnlp push {run_dir} {repo_id} --to-dir DIR and upload them from a machine that is online")
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(run_dir / name)) for name in files]
    operations.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card.encode("utf-8")))
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.create_commit(repo_id, operations, commit_message=message, revision=revision, repo_type="model")
    except Exception as exc:  # network, authentication and Hub errors come from huggingface_hub and its transport
        raise SeqnlpError(_hub_failure(exc, run_dir, repo_id)) from exc
    log.info("pushed %d files to %s", len(operations), repo_id)
    return PushResult(repo_id, sorted(files + [CARD_FILE]), url=str(getattr(info, "commit_url", "") or "") or None)


def _hub_failure(exc: BaseException, run_dir: Path, repo_id: str) -> str:
    """One line saying why an upload failed and what to do."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, OfflineModeIsEnabled):
        return f"cannot push to the Hub: offline mode is on ({first}); use --to-dir DIR and upload it later"
    status = _status(exc)
    if isinstance(exc, LocalTokenNotFoundError) or status in (401, 403):
        return (f"cannot push to {repo_id}: not logged in, or the token cannot write there ({first}); run "
                "`hf auth login` or set HF_TOKEN to a token with write access")
    if isinstance(exc, HfHubHTTPError):
        return f"the Hub refused the upload to {repo_id}: {first}"
    return (f"cannot reach the Hub ({type(exc).__name__}: {first}); check the network, or write the files with "
            f"seqnlp push {run_dir} {repo_id} --to-dir DIR and upload them later")


def _status(exc: BaseException) -> Optional[int]:
    response: Any = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None
