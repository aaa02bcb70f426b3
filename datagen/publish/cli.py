"""`datagen push`, `datagen card` and `datagen validate`: publishing from the command line.

$ datagen validate build/steam
$ datagen card build/steam --repo my-org/steam-controllable
$ datagen push build/steam --repo my-org/steam-controllable --dry-run
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from datagen.errors import DataError
from datagen.options import build_folder_path, resolve_build
from datagen.output import staged_edit
from datagen.publish.hub import connect, plan_push
from datagen.publish.hub import push as push_to_hub
from datagen.publish.release import write_sealed_card
from datagen.publish.validate import check_seal, read_manifest
from datagen.publish.validate import validate as validate_folder

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def checked_repo_id(value: str | None) -> str | None:
    """`--repo` as ORG/NAME; anything else (a URL, which may carry credentials) is refused without being shown, since
    the repo id is written into the card and the manifest."""
    if value is None or REPO_ID.fullmatch(value):
        return value
    raise click.BadParameter("takes a Hub repository id, ORG/NAME (letters, digits, . _ -); the value given is not shown, as a URL may hold credentials")


# a build folder, or a name looked up in build/ as every command's BUILD; a folder without a valid manifest is still
# found, so that `validate` can say what is wrong with it
FOLDER_ARGUMENT = click.argument("folder", metavar="BUILD", callback=lambda ctx, param, value: build_folder_path(value))


@click.command(
    epilog="""\b
Examples:
  datagen push build/steam --repo my-org/steam-controllable --dry-run
  datagen push build/steam --repo my-org/steam-controllable
  datagen push build/steam --repo my-org/steam-controllable --private --tag v1.0.0-rc.1
  datagen push build/steam --repo my-org/steam-controllable --create-pr --no-tag --commit-message "Steam v1.1.0"
\b
Then anyone can load exactly this version:
  load_dataset("my-org/steam-controllable", "controllable", revision="v1.0.0")
"""
)
@FOLDER_ARGUMENT
@click.option("--repo", required=True, metavar="ORG/NAME", callback=lambda ctx, param, value: checked_repo_id(value), help="The dataset repository on the Hub (created if missing).")
@click.option("--private", is_flag=True, help="Create the repository private (an existing one keeps its visibility).")
@click.option("--tag", metavar="vX.Y.Z", help="Tag for this commit [default: v<version in manifest.json>].")
@click.option("--no-tag", is_flag=True, help="Upload without tagging.")
@click.option("--dry-run", is_flag=True, help="List exactly what would be uploaded, and touch nothing.")
@click.option("--force", is_flag=True, help="Move the tag if it already exists (otherwise refused).")
@click.option("--revision", metavar="BRANCH", help="Commit to this branch, made from main if it does not exist [default: main].")
@click.option("--create-pr", is_flag=True, help="Open a pull request with the commit instead of committing (with --no-tag: a PR's commit is tagged after the merge).")
@click.option("--commit-message", metavar="TEXT", help="The commit's message [default: datagen: version X, content HASH].")
@click.option(
    "--permission-to-redistribute",
    is_flag=True,
    help="State that you hold the permission a source's terms require to publish its data (MovieLens: GroupLens'); without it such a build is refused.",
)
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON.")
def push(folder, repo, private, tag, no_tag, dry_run, force, revision, create_pr, commit_message, permission_to_redistribute, as_json):
    """Upload a BUILD to the Hub as one commit, then tag it.

    The folder is checked against its manifest first (as `datagen validate`),
    and the card names the repository. The token comes from `hf auth login` or
    HF_TOKEN and is never printed; HF_ENDPOINT picks another server. A failed
    upload creates no tag and leaves the repository as it was.
    """
    if as_json and not dry_run:
        raise click.BadParameter("the JSON plan is for --dry-run", param_hint="--json")
    manifest = read_manifest(folder)
    tag = None if no_tag else (tag or f"v{manifest['version']}")
    commit = {"revision": revision, "create_pr": create_pr, "commit_message": commit_message}
    plan = plan_push(folder, repo, tag, private, **commit)
    terms = redistribution_terms(manifest, permission_to_redistribute)
    if terms and not dry_run:
        raise DataError(terms, path=folder, hint="Push with --permission-to-redistribute once you hold that permission, or keep the build local.")
    where = f"a pull request against {revision or 'main'}" if create_pr else f"the branch {revision or 'main'}"
    what_happens = (
        f"The repository is created {'private' if private else 'public'} if it does not exist (an existing one keeps its visibility); "
        f"one commit goes to {where}, and files there that the folder lacks are deleted in it."
    )
    if as_json:
        files = [{"path": entry.path, "bytes": entry.bytes} for entry in plan.files]
        listing = {"repo": repo, "tag": tag, "private": private, "revision": revision or "main", "create_pr": create_pr, "commit_message": plan.message, "refused": terms or None,
                   "version": plan.version, "content_hash": plan.content_hash, "total_bytes": plan.total_bytes, "files": files, "note": what_happens}  # fmt: skip
        click.echo(json.dumps(listing, indent=2))
        return
    session = None if dry_run else connect(repo)  # no token or no server: said before the card is touched
    if not dry_run and manifest.get("card", {}).get("repo") != repo:
        manifest.setdefault("card", {})["repo"] = repo
        with staged_edit(folder) as staged:  # a kill leaves the old card and manifest or the new ones
            write_sealed_card(staged, manifest)
        plan = plan_push(folder, repo, tag, private, **commit)
    click.echo(f"{'Would upload' if dry_run else 'Uploading'} {len(plan.files)} files ({plan.total_bytes:,} bytes) to datasets/{repo}, {where}, then tag {tag or '(none)'}:")
    for entry in plan.files:
        click.echo(f"  {entry.bytes:>12,}  {entry.path}")
    if dry_run:
        click.echo(what_happens, err=True)
        if terms:
            click.echo(f"This push would be refused: {terms}", err=True)
        return
    url = push_to_hub(plan, session, force=force)
    click.echo(f"{'Opened' if create_pr else 'Pushed'}: {url}")
    if tag:
        click.echo(f'Load it: load_dataset("{repo}", revision="{tag}")')


def redistribution_terms(manifest: dict, permitted: bool) -> str:
    """Why a push of this build would break its source's terms ("" when it would not)."""
    source = manifest["source"]
    if not source.get("redistribution_forbidden") or permitted:
        return ""
    return f"the terms of the {source['name']} data forbid redistributing it without permission: {source.get('terms', '')}"


@click.command(epilog="\b\nExamples:\n  datagen card build/steam\n  datagen card build/steam --repo my-org/steam-controllable --license cc-by-4.0")
@FOLDER_ARGUMENT
@click.option("--repo", metavar="ORG/NAME", callback=lambda ctx, param, value: checked_repo_id(value), help="The Hub repository the card's examples load from.")
@click.option("--license", "license_id", metavar="ID", help="The Hub licence id for the YAML header [default: other, with the source's terms in the text].")
def card(folder, repo, license_id):
    """Write BUILD's dataset card (README.md and images/) again from its manifest and data.

    The card is generated, never edited by hand: run this after changing
    datagen's card text, or to set the repository or licence it names.
    """
    manifest = read_manifest(folder)
    problems = check_seal(folder, manifest, card=False)
    if problems:
        raise DataError(problems[0], path=folder / "manifest.json", hint="Build the folder again (`datagen build`); `datagen card` writes a card only from the manifest as built.")
    settings = manifest.setdefault("card", {})
    settings.update({key: value for key, value in (("repo", repo), ("license", license_id)) if value})
    with staged_edit(folder) as staged:  # a kill leaves the old card and manifest or the new ones
        write_sealed_card(staged, manifest)
    click.echo(str(folder / "README.md"))


@click.command(epilog="\b\nExample:\n  datagen validate build/steam && datagen push build/steam --repo my-org/steam")
@FOLDER_ARGUMENT
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON list.")
def validate(folder, as_json):
    """Check BUILD against its manifest: every file's sha256, rows and schema, the content hash, the card's configs.

    Exits 1 and lists each problem when something does not match.
    """
    manifest = read_manifest(folder)
    problems = validate_folder(folder)
    if as_json:
        click.echo(json.dumps(problems, indent=2))
    elif problems:
        click.echo(f"{folder}: {len(problems)} problem(s):", err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
    else:
        click.echo(f"{folder}: OK, version {manifest['version']}, content {manifest['content_hash'][:16]}, {len(manifest['files'])} files")
    sys.exit(1 if problems else 0)


@click.group(epilog="\b\nExample:\n  datagen export recbole build/steam-sample --out export/")
def export():
    """Write a build's canonical tables in another library's format."""


@export.command(
    "recbole",
    epilog="""\b
Examples:
  datagen export recbole build/steam-sample --out export/
  datagen export recbole steam --out export/ --name steam-datagen
\b
Writes OUT/NAME/: NAME.inter and NAME.item (read back by
`datagen build recbole:NAME --raw-dir OUT -O "seq_separator=|"`, they give the
same tables), the benchmark split NAME.train/.valid/.test.inter (datagen's
leave-one-out, in RecBole's sequence form) and NAME.yaml, the RecBole settings
that read it:
  run_recbole --model=SASRec --dataset=NAME --config_files=OUT/NAME/NAME.yaml  (with data_path: OUT)
""",
)
@click.argument("build", metavar="BUILD")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="The folder to write NAME/ into.")
@click.option("--name", help="The dataset's name in RecBole [default: the build's].")
def export_recbole_command(build, out_dir, name):
    """RecBole atomic files of a build: the same users, items and leave-one-out split, for RecBole's models."""
    from datagen.publish.recbole import export_recbole

    click.echo(export_recbole(resolve_build(build), out_dir, name))
