"""Publishing a merged model on the Hugging Face hub (`peftbench merge --push-to-hub`): the
repository id and the connection are checked before anything is merged, and a failed
upload leaves the merged folder in place with the command that finishes the job."""

from __future__ import annotations

from pathlib import Path

from peftbench.errors import PeftbenchError


def check_can_push(repo_id: str) -> None:
    """Refuse a malformed repository id, or a hub switched off, before any work is done."""
    from huggingface_hub import constants
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PeftbenchError(f"--push-to-hub {repo_id!r}: not a repository id ({exc}); expected user/name") from None
    if constants.HF_HUB_OFFLINE:
        raise PeftbenchError("--push-to-hub: the hub is switched off here (HF_HUB_OFFLINE is set); merge without "
                             "--push-to-hub, then upload the folder where the hub is reachable: "
                             f"hf upload {repo_id} <folder>")


def push_folder(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Create (or reuse) the model repository and upload the folder; returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message="Upload a model merged by peftbench")
    except Exception as exc:  # network, authentication, permissions: all end the same way for the user
        raise PeftbenchError(f"--push-to-hub {repo_id}: the upload failed ({type(exc).__name__}: {str(exc)[:300]}); "
                             f"the merged model is in {folder}; log in (hf auth login) and run: "
                             f"hf upload {repo_id} {folder}") from None
    return str(url)
