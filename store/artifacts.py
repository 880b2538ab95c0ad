"""Tuned-model artifacts: their layout, and the one Django storage every process reads and writes them through.

The storage is `STORAGES["artifacts"]` (config/settings.py): a FileSystemStorage on ARTIFACTS_DIR by default
(one machine, or a shared volume), or any storage class (S3 through django-storages, ...) when workers run on
other machines. Names inside it:

    tuned/<organization id>/<short id>/          the adapter (or full model) folder a fine-tuning job produced
    tuned/<organization id>/<short id>/merged/   "merge and export" of a LoRA-family model, a folder of its own

A folder is published file by file, then its manifest (`.manifest.json`: every file with its size and sha256)
is written last, so a reader never takes a half-uploaded folder for a model. Folders written before manifests
existed are read by listing the storage instead.

Writers (the training worker, the merge) build a folder on their local disk and `publish_folder` it. Readers
that need files on disk (the inference worker, the merge) call `local_folder`: a FileSystemStorage is read in
place; any other backend is fetched once into ARTIFACTS_CACHE_DIR, under the artifact's name and its
manifest's hash, so a changed artifact is fetched again. The download views stream with `open_file`.

Web-safe: no torch. Workers import this; it imports nothing of theirs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

STORAGE_ALIAS = "artifacts"
MANIFEST = ".manifest.json"
MERGED = "merged"
# Sub-folders that are artifacts (or scratch) of their own, never part of the folder above them.
_NESTED = {MERGED, f"{MERGED}.partial"}
_CHUNK = 1 << 20


class ArtifactMissing(Exception):
    """An artifact the database names is not in the storage (deleted, never uploaded, or another storage)."""


@dataclass(frozen=True)
class ArtifactFile:
    path: str  # relative to the artifact folder, with forward slashes
    size: int
    sha256: str = ""  # empty for folders written before manifests


def storage() -> Storage:
    return storages[STORAGE_ALIAS]


def describe() -> str:
    """The storage, for error messages an operator reads ("FileSystemStorage at /srv/artifacts")."""
    backend = storage()
    location = getattr(backend, "location", "") or getattr(backend, "bucket_name", "")
    return f"{backend.__class__.__name__}" + (f" at {location}" if location else "")


def new_tuned_name(organization_id: int, short_id: str) -> str:
    return f"tuned/{organization_id}/{short_id}"


def tuned_name(tuned) -> str:
    """The folder of a tuned model's weights (TunedModel.artifact_path, set when it is registered)."""
    return str(tuned.artifact_path)


def merged_name(tuned) -> str:
    return _join(tuned_name(tuned), MERGED)


def _join(*parts: str) -> str:
    return "/".join(part.strip("/") for part in parts if part.strip("/"))


def _local_root(backend: Storage, name: str) -> Path | None:
    """Where a storage keeps `name` on this machine's disk, when it does (FileSystemStorage)."""
    try:
        return Path(backend.path(name))
    except NotImplementedError:
        return None


# --- writing -----------------------------------------------------------------------------------------------


class _MovableFile(File):
    """A local file FileSystemStorage may move into place instead of copying (its temporary-upload path)."""

    def temporary_file_path(self) -> str:
        return str(self.name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _save(backend: Storage, name: str, content: File) -> None:
    if backend.exists(name):
        backend.delete(name)
    saved = backend.save(name, content)
    if saved != name:  # a backend that renames instead of overwriting would scatter the folder
        backend.delete(saved)
        raise OSError(f"the artifact storage saved {name!r} as {saved!r}; configure it to overwrite files")


def publish_folder(local: Path, name: str, *, scratch: bool = False) -> int:
    """Upload every file under `local` as the artifact `name`, manifest last; return the bytes published.

    A previous manifest is removed first, so readers see "missing" while it is replaced, never a mix.
    `scratch`: the local folder is not needed afterwards: a FileSystemStorage moves its files instead of
    copying them, and the folder is removed.
    """
    local, backend = Path(local), storage()
    movable = scratch and _local_root(backend, name) is not None  # only a local storage can take a file by rename
    files = sorted(path for path in local.rglob("*") if path.is_file())
    entries = [ArtifactFile(path.relative_to(local).as_posix(), path.stat().st_size, _sha256(path))
               for path in files]
    manifest_name = _join(name, MANIFEST)
    if backend.exists(manifest_name):
        backend.delete(manifest_name)
    for path, entry in zip(files, entries, strict=True):
        target = _join(name, entry.path)
        if movable:
            _save(backend, target, _MovableFile(None, name=str(path)))
        else:
            with open(path, "rb") as source:
                _save(backend, target, File(source, name=path.name))
    manifest = {"files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in entries]}
    _save(backend, manifest_name, ContentFile(json.dumps(manifest, indent=1).encode(), name=MANIFEST))
    if scratch:
        shutil.rmtree(local, ignore_errors=True)
    return sum(entry.size for entry in entries)


def delete_folder(name: str) -> None:
    """Remove the artifact `name` and everything under it (its merged export too). Missing is fine."""
    if not name.strip("/"):
        return  # never the whole storage
    backend = storage()
    if backend.exists(_join(name, MANIFEST)):
        backend.delete(_join(name, MANIFEST))  # unpublished first, then its files
    for path in _walk(backend, name, nested=True):
        backend.delete(_join(name, path))
    root = _local_root(backend, name)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)  # the empty directories a FileSystemStorage leaves


# --- reading -----------------------------------------------------------------------------------------------


def _walk(backend: Storage, name: str, nested: bool = False) -> Iterator[str]:
    try:
        directories, files = backend.listdir(name)
    except (FileNotFoundError, NotADirectoryError):
        return
    yield from files
    for directory in directories:
        if nested or directory not in _NESTED:
            yield from (f"{directory}/{path}" for path in _walk(backend, _join(name, directory), nested))


def files(name: str) -> list[ArtifactFile]:
    """The files of the artifact `name`, from its manifest (or a listing, for a folder older than manifests).

    Raises ArtifactMissing when there are none."""
    if not name.strip("/"):
        raise ArtifactMissing("This model has no weights in the artifact storage (no artifact path).")
    backend = storage()
    manifest_name = _join(name, MANIFEST)
    if backend.exists(manifest_name):
        with backend.open(manifest_name, "rb") as manifest:
            entries = json.loads(manifest.read())["files"]
        found = [ArtifactFile(entry["path"], int(entry["size"]), entry["sha256"]) for entry in entries]
    else:
        found = [ArtifactFile(path, backend.size(_join(name, path))) for path in sorted(_walk(backend, name))]
    if not found:
        raise ArtifactMissing(f"The artifact {name!r} is not in the artifact storage ({describe()}).")
    for item in found:  # fetched files are written under these paths: nothing may climb out of the folder
        if item.path.startswith("/") or ".." in item.path.split("/"):
            raise ArtifactMissing(f"The artifact {name!r} lists a file outside its folder: {item.path!r}.")
    return found


def open_file(name: str, path: str):
    return storage().open(_join(name, path), "rb")


def _version(found: list[ArtifactFile], backend: Storage, name: str) -> str:
    """A hash that changes when the artifact's content does (sizes and modification times for old folders)."""
    rows = []
    for item in found:
        stamp = item.sha256 or str(backend.get_modified_time(_join(name, item.path)).timestamp())
        rows.append(f"{item.path}\0{item.size}\0{stamp}")
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def local_folder(name: str, *, check: bool = True) -> Path:
    """A folder on this machine's disk with the artifact's files, for loaders that read files.

    Raises ArtifactMissing (naming the artifact and the storage) when the storage does not hold it; with
    `check=False` a local storage's folder is returned as it is (tests and benchmarks that write into it)."""
    backend = storage()
    root = _local_root(backend, name)
    if root is not None and not check:
        return root
    found = files(name)
    if root is not None:
        return root
    target = Path(settings.ARTIFACTS_CACHE_DIR) / name / _version(found, backend, name)
    if target.is_dir():
        return target
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.partial"  # one per fetch: no lock needed
    try:
        for item in found:
            _fetch_file(backend, name, item, staging / item.path)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # not a concurrent fetch that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _fetch_file(backend: Storage, name: str, item: ArtifactFile, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    try:
        source = backend.open(_join(name, item.path), "rb")
    except FileNotFoundError:
        raise ArtifactMissing(f"The artifact {name!r} is incomplete in the artifact storage ({describe()}): "
                              f"{item.path} is missing.") from None
    with source, open(destination, "wb") as target:
        for block in source.chunks(_CHUNK):
            digest.update(block)
            size += len(block)
            target.write(block)
    if size != item.size or (item.sha256 and digest.hexdigest() != item.sha256):
        raise ArtifactMissing(f"The artifact {name!r} changed or is corrupt in the artifact storage ({describe()}): "
                              f"{item.path} does not match its manifest.")
