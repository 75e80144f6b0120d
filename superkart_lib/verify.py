"""``superkart verify``: check a whole model package without deserialising anything.

Pure Python (no scikit-learn, no pandas), so production can verify what it is about
to serve with the same checks the loaders run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from superkart_lib import formats, integrity
from superkart_lib import manifest as mf
from superkart_lib.integrity import IntegrityError
from superkart_lib.model_card import CARD

#: Every file a complete package holds besides the manifest.
EXPECTED_FILES: tuple[str, ...] = (*formats.FORMATS, CARD)


def verify_package(package_dir: str | Path) -> list[str]:
    """Check signature (when a key is set), every file's sha256 and size, and library versions.

    Returns
    -------
    list of str
        One line per file checked, plus one per version warning.

    Raises
    ------
    SuperKartError
        At the first problem, naming the file: a missing, altered or unexpected file,
        an unsigned or wrongly signed manifest, or an error-level version mismatch.
    """
    package_dir = Path(package_dir)
    if not package_dir.is_dir():
        raise IntegrityError(f"{package_dir}: no such package directory")
    manifest = mf.read(package_dir)
    listed = set(manifest.get("files", {}))
    for name in EXPECTED_FILES:
        if name not in listed:
            raise IntegrityError(f"{package_dir / name}: missing from the manifest (an incomplete package)")
    for path in sorted(package_dir.iterdir()):
        if path.name != mf.MANIFEST and path.name not in listed:
            raise IntegrityError(f"{path}: not part of the package (not in the manifest)")
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", formats.VersionSkewWarning)
        for name in sorted(listed):
            if name in formats.FORMATS:
                formats.verify(package_dir, name, manifest)
            else:
                integrity.check_signature_if_configured(manifest, str(package_dir / mf.MANIFEST))
                integrity.verify_file(package_dir, name, manifest)
            entry = manifest["files"][name]
            lines.append(f"ok  {name:<18} {entry['bytes']:>10,} bytes  sha256 {entry['sha256'][:16]}")
    lines += [f"warning: {w.message}" for w in caught if issubclass(w.category, formats.VersionSkewWarning)]
    signed = "signed, " if integrity.SIGNATURE_FIELD in manifest else ""
    lines.append(f"package {manifest.get('package_version')} verified: {signed}{len(listed)} files")
    return lines
