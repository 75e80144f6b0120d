"""``superkart verify``: check a whole model package without deserialising anything.

Runs in either environment. Every file's sha256 and size (and the manifest's signature, when
a key is set) is checked everywhere; a format's library-version rules are applied where the
libraries it needs to load are installed. In the production environment the Python-object
formats cannot be loaded at all (no scikit-learn): they are still hash-checked, and the report
says which could not be loaded here and what loading them needs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from superkart_lib.contract import integrity
from superkart_lib.contract import manifest as mf
from superkart_lib.contract.errors import IntegrityError, VersionSkewWarning
from superkart_lib.contract.formats import FORMATS, verify

#: Every file a complete package holds besides the manifest.
EXPECTED_FILES: tuple[str, ...] = (*FORMATS, mf.CARD)
#: Files a package may hold: checked like the others when listed, but packages written before them still verify.
OPTIONAL_FILES: tuple[str, ...] = (mf.REFERENCE_STATS,)


def verify_package(package_dir: str | Path) -> list[str]:
    """Check signature (when a key is set), every file's sha256 and size, and library versions.

    A package that is a link (``out -> out.versions/<version>``) is resolved once and every file
    is read from that version directory.

    Returns
    -------
    list of str
        One line per file checked, one per version warning, and a last line saying the package
        verified (and how many formats this environment cannot load).

    Raises
    ------
    SuperKartError
        At the first problem, naming the file: a manifest of the wrong shape (naming the key),
        a file entry that is not a plain name in the package, a missing, altered or unexpected file, an
        unsigned or wrongly signed manifest, or an error-level version mismatch in a format
        this environment can load.
    """
    # Resolved once: every file below comes from this one version, even if the link moves meanwhile.
    root, manifest = mf.open_package(package_dir)
    files = manifest["files"]
    listed = set(files)
    for name in EXPECTED_FILES:
        if name not in listed:
            raise IntegrityError(f"{root / name}: missing from the manifest (an incomplete package)")
    for path in sorted(root.iterdir()):
        if path.name != mf.MANIFEST and path.name not in listed:
            raise IntegrityError(f"{path}: not part of the package (not in the manifest)")
    for name in listed:
        mf.package_file(root, name)
    integrity.check_signature_if_configured(manifest, str(root / mf.MANIFEST))
    lines, unloadable = [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", VersionSkewWarning)
        for name in sorted(listed):
            fmt = FORMATS.get(name)
            missing = fmt.missing() if fmt else []
            if fmt and not missing:
                verify(root, name, manifest)
            else:  # the model card, or a format this environment cannot load: its bytes are still checked
                integrity.verify_file(root, name, manifest)
            entry = files[name]
            note = f"  (not loadable here: needs {', '.join(missing)})" if missing else ""
            lines.append(f"ok  {name:<18} {entry['bytes']:>10,} bytes  sha256 {entry['sha256'][:16]}{note}")
            if missing:
                unloadable.append(name)
    lines += [f"warning: {w.message}" for w in caught if issubclass(w.category, VersionSkewWarning)]
    lines += [f"note: no {name} (a package from an earlier release)" for name in OPTIONAL_FILES if name not in listed]
    signed = "signed, " if integrity.SIGNATURE_FIELD in manifest else ""
    last = f"package {manifest['package_version']} verified: {signed}{len(listed)} files"
    if unloadable:
        last += (
            f"; {len(unloadable)} format(s) hash-checked but not loadable in this environment "
            "(install superkart_lib[dev] to check their library versions too)"
        )
    lines.append(last)
    return lines
