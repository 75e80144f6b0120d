"""Integrity checks run before any model file is deserialised.

Standard library only (hashlib, hmac, json) so the production runtime uses the same checks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from superkart_lib.contract.errors import IntegrityError
from superkart_lib.contract.files import sha256_of
from superkart_lib.contract.manifest import json_default


def verify_file(package_dir: str | Path, name: str, manifest: dict[str, Any]) -> bytes:
    """Read package file ``name`` and check it against the manifest; return its bytes.

    The bytes returned are the bytes that were hashed, so a caller that
    deserialises them cannot be raced by a file swapped after the check.

    Raises
    ------
    IntegrityError
        Naming the file when it is not in the manifest, missing, or its size or
        sha256 differs from the recorded one.
    """
    path = Path(package_dir) / name
    entry = manifest.get("files", {}).get(name)
    if entry is None:
        raise IntegrityError(f"{path}: not listed in the package manifest")
    if not path.is_file():
        raise IntegrityError(f"{path}: listed in the manifest but missing")
    data = path.read_bytes()
    digest = sha256_of(data)
    if len(data) != entry.get("bytes") or digest != entry.get("sha256"):
        raise IntegrityError(
            f"{path}: sha256 {digest[:12]}... does not match the manifest's "
            f"{str(entry.get('sha256'))[:12]}... (the file was altered or corrupted); refusing to load it"
        )
    return data


# --- Optional manifest signing -------------------------------------------------------
# The manifest vouches for every file's sha256, so whoever can rewrite it can swap a
# model file. With a shared secret in SUPERKART_SIGNING_KEY the manifest carries an
# HMAC-SHA256 in its own "signature" field, computed over the canonical JSON of the
# manifest without that field (sorted keys, no whitespace, UTF-8). One file keeps the
# package self-describing; `superkart verify` and GET /v1/model see the signature too.

SIGNING_KEY_ENV = "SUPERKART_SIGNING_KEY"
SIGNATURE_FIELD = "signature"
_SCHEME = "hmac-sha256:"


def signing_key() -> bytes | None:
    """The signing key from ``SUPERKART_SIGNING_KEY``, or None when the variable is unset.

    Raises
    ------
    IntegrityError
        When the variable is set but empty: an empty HMAC key would sign nothing.
    """
    value = os.environ.get(SIGNING_KEY_ENV)
    if value is None:
        return None
    if not value:
        raise IntegrityError(f"{SIGNING_KEY_ENV} is set but empty; unset it or give it a secret")
    return value.encode("utf-8")


def canonical_manifest(manifest: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the manifest minus its signature, as canonical JSON."""
    unsigned = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    # A round trip through JSON first, so a freshly built dict (tuples, numpy scalars,
    # int keys) canonicalises exactly like the same manifest read back from disk.
    plain = json.loads(json.dumps(unsigned, default=json_default))
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_manifest(manifest: dict[str, Any], key: bytes | str) -> str:
    """Signature of ``manifest`` (any existing signature field ignored): ``hmac-sha256:<hex>``."""
    key = key.encode("utf-8") if isinstance(key, str) else key
    return _SCHEME + hmac.new(key, canonical_manifest(manifest), hashlib.sha256).hexdigest()


def check_signature(manifest: dict[str, Any], key: bytes | str, source: str = "manifest.json") -> None:
    """Check the manifest's signature field against ``key``.

    Raises
    ------
    IntegrityError
        Naming ``source`` when the signature is missing, malformed or does not match.
    """
    recorded = manifest.get(SIGNATURE_FIELD)
    if recorded is None:
        raise IntegrityError(f"{source}: not signed, but {SIGNING_KEY_ENV} is set; refusing an unsigned package")
    if not isinstance(recorded, str) or not recorded.startswith(_SCHEME):
        raise IntegrityError(f"{source}: signature is not of the form '{_SCHEME}<hex>'; refusing the package")
    if not hmac.compare_digest(recorded, sign_manifest(manifest, key)):
        raise IntegrityError(
            f"{source}: signature does not match (the manifest was altered or signed with another key); "
            "refusing the package"
        )


def sign_if_configured(manifest: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``manifest``, signed when ``SUPERKART_SIGNING_KEY`` is set (for writers)."""
    key = signing_key()
    unsigned = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    return unsigned if key is None else {**unsigned, SIGNATURE_FIELD: sign_manifest(unsigned, key)}


def check_signature_if_configured(manifest: dict[str, Any], source: str = "manifest.json") -> None:
    """Check the signature when ``SUPERKART_SIGNING_KEY`` is set; without a key, do nothing."""
    key = signing_key()
    if key is not None:
        check_signature(manifest, key, source)
