"""Checkpoint manifests: the SHA-256 and size of every file genesis writes into a checkpoint.

``genesis_manifest.json`` sits next to HF's files (which keep their names and layout, so
transformers still loads the folder) and is written last: a folder whose manifest is present
is complete. Loading verifies each file it reads against it and refuses a damaged one with a
``CheckpointCorruptError`` naming the file. The manifest carries a checksum of its own entries,
so a damaged manifest is told apart from a damaged file. Folders without a manifest (hub
checkpoints, other tools) load unverified.
"""
import hashlib
import json
import os

from ..._atomic import FileDigest, atomic_write, sha256_file

__all__ = ["MANIFEST_NAME", "CheckpointCorruptError", "write_manifest", "read_manifest",
           "update_manifest", "verify_checkpoint"]

MANIFEST_NAME = "genesis_manifest.json"
_FORMAT = "genesis-manifest/1"


class CheckpointCorruptError(RuntimeError):
    """A checkpoint file is missing, truncated or does not match its recorded checksum."""


def _entries_checksum(files):
    return hashlib.sha256(json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
                          ).hexdigest()


def write_manifest(directory, digests):
    """Write the manifest of ``{file name: FileDigest}`` into ``directory`` (atomically)."""
    files = {name: {"sha256": d.sha256, "size": d.size} for name, d in sorted(digests.items())}
    manifest = {"format": _FORMAT, "files": files, "checksum": _entries_checksum(files)}
    atomic_write(os.path.join(directory, MANIFEST_NAME),
                 json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(directory):
    """``{file name: {"sha256", "size"}}`` of ``directory``'s manifest, or None without one."""
    path = os.path.join(directory, MANIFEST_NAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
        files = manifest["files"]
        ok = manifest.get("format") == _FORMAT and isinstance(files, dict) and \
            manifest.get("checksum") == _entries_checksum(files)
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise CheckpointCorruptError(f"{path} is damaged (not a valid genesis manifest or its "
                                     "checksum does not match its entries)")
    return files


def update_manifest(directory, digests):
    """Record files just rewritten by genesis (e.g. ``config.save_pretrained`` into a saved
    checkpoint) in ``directory``'s manifest; a folder without a valid manifest is left as is."""
    try:
        files = read_manifest(directory)
    except CheckpointCorruptError:
        return
    if files is None:
        return
    merged = {name: FileDigest(e["sha256"], e["size"]) for name, e in files.items()}
    merged.update(digests)
    write_manifest(directory, merged)


def verify_checkpoint(directory, names=None):
    """Check the files ``names`` (default: all) of ``directory`` against its manifest.

    Returns the manifest's entries (None when the folder has no manifest, nothing checked).
    Raises ``CheckpointCorruptError`` naming the first missing, truncated or damaged file,
    and for a name the manifest does not list.
    """
    files = read_manifest(directory)
    if files is None:
        return None
    manifest_path = os.path.join(directory, MANIFEST_NAME)
    for name in (sorted(files) if names is None else names):
        path = os.path.join(directory, name)
        entry = files.get(name)
        if entry is None:
            raise CheckpointCorruptError(
                f"{path} is not listed in {manifest_path}: the folder was changed after genesis "
                "wrote it (delete the manifest to load it unverified)")
        if not os.path.isfile(path):
            raise CheckpointCorruptError(f"{path} is missing (listed in {manifest_path})")
        size = os.path.getsize(path)
        if size != entry["size"]:
            what = "truncated" if size < entry["size"] else "damaged"
            raise CheckpointCorruptError(f"{path} is {what}: {size} bytes, the manifest records "
                                         f"{entry['size']}")
        if sha256_file(path).sha256 != entry["sha256"]:
            raise CheckpointCorruptError(
                f"{path} is damaged: its SHA-256 does not match {manifest_path} (the file was "
                "corrupted or rewritten by another tool; delete the manifest to load it "
                "unverified)")
    return files
