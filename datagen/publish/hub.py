"""Push a dataset folder to the Hugging Face Hub as one commit, then tag it.

    >>> plan = plan_push(Path("build/steam"), "my-org/steam-controllable")  # doctest: +SKIP
    >>> [entry.path for entry in plan.files][:2]  # doctest: +SKIP
    ['README.md', 'data/controllable/test-00000-of-00001.parquet']
    >>> push(plan, connect(plan.repo))  # doctest: +SKIP
    'https://huggingface.co/datasets/my-org/steam-controllable/commit/3c1f...'

The token comes from `hf auth login` or $HF_TOKEN (huggingface_hub's own
lookup) and is handed only to huggingface_hub: it is never printed, logged or
written, and every error message is scrubbed of it. $HF_ENDPOINT picks the server.
Each request may wait $DATAGEN_PUSH_TIMEOUT seconds (60) for the server.

Order: check the folder, reach the server with the token (whoami, `connect`:
before the command changes the card or prints its file list), refuse an
existing tag unless forced, then one commit with every file of the folder
(and deletions of remote files it no longer has). Only after the commit
succeeds is the tag moved or created, so a failed upload leaves the repository
and its tags as they were (a Hub commit is atomic); a failure at the tag itself
says so and names the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datagen.errors import DataError
from datagen.publish.release import repository_files
from datagen.publish.validate import read_manifest, validate
from datagen.redact import redact, redact_url
from datagen.timeouts import seconds_from_env

REPO_TYPE = "dataset"
KEEP_REMOTE = (".gitattributes",)  # the Hub manages it
TIMEOUT_ENV = "DATAGEN_PUSH_TIMEOUT"
DEFAULT_TIMEOUT = 60.0  # seconds one request may wait for the server


class PushError(DataError):
    """A push that could not be done; the message never holds the token."""


@dataclass(frozen=True)
class UploadFile:
    path: str
    bytes: int


@dataclass(frozen=True)
class PushPlan:
    folder: Path
    repo: str
    tag: str | None
    private: bool
    version: str
    content_hash: str
    files: tuple[UploadFile, ...]
    revision: str | None = None  # the branch to commit to (created from main if missing) [default: main]
    create_pr: bool = False  # open a pull request with the commit instead of committing to the branch
    commit_message: str | None = None

    @property
    def message(self) -> str:
        return self.commit_message or f"datagen: version {self.version}, content {self.content_hash[:16]}"

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.files)


def plan_push(folder: Path, repo: str, tag: str | None = None, private: bool = False, **commit) -> PushPlan:
    """What a push would upload; refuses a folder that does not match its manifest. `commit`: PushPlan's revision,
    create_pr and commit_message."""
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise PushError(f"repository {repo!r} is not ORG/NAME", hint="e.g. --repo my-org/steam-controllable")
    manifest = read_manifest(folder)
    problems = validate(folder)
    if problems:
        raise PushError("the folder does not match its manifest:\n  " + "\n  ".join(problems), path=folder, hint="Rebuild it, or run `datagen card FOLDER` after a card change.")
    files = tuple(UploadFile(name, (folder / name).stat().st_size) for name in repository_files(folder))
    plan = PushPlan(folder, repo, tag, private, manifest["version"], manifest["content_hash"], files, **commit)
    if plan.create_pr and plan.tag is not None:
        raise PushError("a pull request's commit is not tagged until it is merged", hint="Push with --create-pr --no-tag, merge the PR, then tag it on the Hub.")
    return plan


def endpoint() -> str:
    """The Hub server ($HF_ENDPOINT), as messages may show it: without user:password@ or a query."""
    from huggingface_hub import constants

    return redact_url(constants.ENDPOINT)


def _detail(error: Exception, token: str) -> str:
    """The error's first line, with the token (and any other secret) masked should a library or the server have put it there."""
    return redact(f"{type(error).__name__}: {error}", token).splitlines()[0]


def request_timeout() -> float:
    """Seconds one request to the Hub may wait for the server: $DATAGEN_PUSH_TIMEOUT, 60 by default."""
    return seconds_from_env(TIMEOUT_ENV, DEFAULT_TIMEOUT)


def _bound_request_time() -> None:
    """huggingface_hub's shared HTTP client waits forever by default; a server that never answers must not hang a push."""
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub.utils import get_session

    seconds = request_timeout()
    get_session().timeout = httpx2.Timeout(seconds, connect=min(seconds, 10.0))


def _is_network_error(error: BaseException) -> bool:
    names = {cls.__name__ for cls in type(error).__mro__}
    return isinstance(error, OSError) or bool(names & {"TransportError", "ConnectionError", "Timeout", "TimeoutException"})


def _explain(error: Exception, repo: str, token: str, step: str) -> PushError:
    from huggingface_hub.errors import HfHubHTTPError

    detail = _detail(error, token)
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        hints = {401: "The token was refused: log in again (`hf auth login`) or set HF_TOKEN.",
                 403: f"The token may not write to {repo}: it needs write access to that organisation."}  # fmt: skip
        return PushError(f"{step} failed at {endpoint()} (HTTP {status}): {detail}", hint=hints.get(status, "Nothing was tagged."))
    if "timeout" in type(error).__name__.lower():
        return PushError(
            f"the Hub at {endpoint()} did not answer within {request_timeout():g} s (step: {step})",
            hint=f"Try again later, or allow more time with ${TIMEOUT_ENV}. Nothing was tagged; the repository is as it was.",
        )
    if _is_network_error(error):
        return PushError(
            f"the Hub at {endpoint()} could not be reached (step: {step}; {detail})",
            hint="Check the network, a proxy, or HF_ENDPOINT. Nothing was tagged; the repository is as it was.",
        )
    return PushError(f"{step} failed: {detail}", hint="Nothing was tagged; the repository is as it was.")


@dataclass(frozen=True)
class HubSession:
    """The Hub reached with the user's token: what `push` needs, got before the folder is touched or a line printed."""

    api: object  # huggingface_hub.HfApi
    token: str


def connect(repo: str) -> HubSession:
    """Refuse offline mode and a missing token, and reach the server with the token (whoami)."""
    from huggingface_hub import HfApi, constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise PushError("HF_HUB_OFFLINE is set, so nothing can be pushed", hint="Unset HF_HUB_OFFLINE (and connect) to push.")
    token = get_token()
    if not token:
        raise PushError("no Hugging Face token", hint="Run `hf auth login`, or set HF_TOKEN to a token with write access.")
    api = HfApi(token=token)
    _bound_request_time()
    try:
        api.whoami()
    except Exception as error:  # noqa: BLE001  (every failure becomes one scrubbed message)
        raise _explain(error, repo, token, "reach the Hub") from None
    return HubSession(api, token)


def push(plan: PushPlan, session: HubSession, force: bool = False) -> str:
    """Upload as one commit, then tag; returns the commit's URL (the pull request's, with create_pr)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    api, token = session.api, session.token
    step, commit = f"create {plan.repo}", None
    try:
        api.create_repo(plan.repo, repo_type=REPO_TYPE, private=plan.private, exist_ok=True)
        step = f"read the tags of {plan.repo}"
        tag_exists = plan.tag is not None and plan.tag in {ref.name for ref in api.list_repo_refs(plan.repo, repo_type=REPO_TYPE).tags}
        if tag_exists and not force:
            raise PushError(f"tag {plan.tag} already exists in {plan.repo}", hint="Pick a new --version/--tag, or pass --force to move the tag.")
        if plan.revision is not None and not plan.create_pr:
            step = f"create the branch {plan.revision} of {plan.repo}"
            api.create_branch(plan.repo, branch=plan.revision, repo_type=REPO_TYPE, exist_ok=True)
        step = f"list the files of {plan.repo}"
        uploading = {entry.path for entry in plan.files}
        remote = api.list_repo_files(plan.repo, repo_type=REPO_TYPE, revision=plan.revision)
        stale = [name for name in remote if name not in uploading and name not in KEEP_REMOTE]
        operations = [CommitOperationAdd(path_in_repo=entry.path, path_or_fileobj=str(plan.folder / entry.path)) for entry in plan.files]
        operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
        step = f"upload to {plan.repo}"
        commit = api.create_commit(plan.repo, operations=operations, repo_type=REPO_TYPE, revision=plan.revision, create_pr=plan.create_pr, commit_message=plan.message)
        if plan.tag is not None:
            step = f"tag {plan.tag}"
            if tag_exists:
                api.delete_tag(plan.repo, tag=plan.tag, repo_type=REPO_TYPE)
            api.create_tag(plan.repo, tag=plan.tag, revision=commit.oid, repo_type=REPO_TYPE, tag_message=f"version {plan.version}")
    except PushError:
        raise
    except Exception as error:  # noqa: BLE001  (every failure becomes one scrubbed message)
        if commit is not None:  # the files are up; only the tag is missing
            raise PushError(
                f"uploaded as {commit.commit_url}, but could not {step}: {_detail(error, token)}",
                hint=f"Tag commit {commit.oid} by hand (HfApi().create_tag) or push again with --force.",
            ) from None
        raise _explain(error, plan.repo, token, step) from None
    return commit.pr_url if plan.create_pr else commit.commit_url
