"""Demo 03: unpickling runs code the file names; the library checks hashes before it unpickles.

A pickle whose ``__reduce__`` calls ``exec`` creates a "canary" file when loaded. Plain
``pickle.load`` runs it; the package loader refuses the same bytes (sha256 mismatch) before
deserialising; a signed manifest stops an attacker who rewrites the hash too; and skops
refuses types outside the allow-list without constructing anything.
Run: python serialization_demos/03_malicious_pickle.py
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from superkart_lib.contract import errors, integrity
from superkart_lib.contract import manifest as mf
from superkart_lib.contract.errors import SuperKartError
from superkart_lib.contract.files import sha256_of
from superkart_lib.development import python_formats, skops_audit
from superkart_lib.development.data import load_training_data
from superkart_lib.development.package import write_package
from superkart_lib.development.train import compare_zoo, split, train

DEMO_KEY = "demo-signing-key-not-a-secret"


class Payload:
    """Unpickling this runs ``exec`` on attacker-chosen source: here, harmlessly writing a file."""

    def __init__(self, canary: Path):
        self.source = f"open({str(canary)!r}, 'w').write('code ran during unpickling')"

    def __reduce__(self):
        return (exec, (self.source,))


def expect(condition: bool, message: str) -> None:
    """Exit non-zero, naming the lesson that did not hold."""
    if not condition:
        sys.exit(f"LESSON FAILED: {message}")


def refusal(package: Path, name: str, tmp: str) -> str:
    """The library loader's one-line refusal of ``name`` (exits if it loads instead)."""
    try:
        python_formats.load(package, name)
    except SuperKartError as exc:
        return f"{type(exc).__name__}: {str(exc).replace(tmp, '<tmp>')}"
    sys.exit(f"LESSON FAILED: the library loaded a tampered {name}")


def signed_package(tmp: Path) -> Path:
    """A small real package, signed with the demo key (as a publisher with a secret would)."""
    frame, facts = load_training_data(None, rows=2000, seed=0)
    zoo = compare_zoo(split(frame), families=["gradient_boosting"], n_jobs=1)
    return write_package(train(frame, n_iter=0, zoo=zoo), tmp / "model", facts)


def main() -> None:
    os.environ[integrity.SIGNING_KEY_ENV] = DEMO_KEY  # this process only
    with tempfile.TemporaryDirectory() as tmp:
        canary = Path(tmp) / "CANARY.txt"
        evil = pickle.dumps(Payload(canary))
        (Path(tmp) / "evil.pkl").write_bytes(evil)

        print(f"a) plain pickle.load of a {len(evil)}-byte file, in a throwaway process:")
        loader = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"
        subprocess.run([sys.executable, "-c", loader, str(Path(tmp) / "evil.pkl")], check=True)
        expect(canary.exists(), "pickle.load should have run the payload")
        print(f"   canary created: {canary.name} says {canary.read_text()!r}")
        canary.unlink()

        package = signed_package(Path(tmp))
        (package / "model.pkl").write_bytes(evil)  # the manifest still lists the real file's sha256
        print("\nb) the same bytes in place of model.pkl in a real package; formats.load refuses:")
        message = refusal(package, "model.pkl", tmp)
        print(f"   {message}\n   canary created: {canary.exists()}")
        expect("model.pkl" in message and "sha256" in message and not canary.exists(), "hash check must come first")

        manifest = mf.read(package)  # an attacker who can also rewrite the manifest's hash...
        manifest["files"]["model.pkl"] = {"sha256": sha256_of(evil), "bytes": len(evil)}
        (package / mf.MANIFEST).write_text(mf.dumps(manifest), encoding="utf-8")
        print("\nc) the attacker also rewrites the manifest's sha256; its HMAC signature no longer matches:")
        message = refusal(package, "model.pkl", tmp)
        print(f"   {message}\n   canary created: {canary.exists()}")
        expect("signature" in message and not canary.exists(), "a signed manifest must stop a rewritten hash")
        print("   (unsigned, the rewritten manifest would be believed and the payload would run: sign it)")

    # skops reads a JSON schema of types first and builds only allow-listed ones.
    hostile = sio.dumps(Pipeline([("run", FunctionTransformer(os.system))]))
    print("\nd) a skops file whose pipeline calls os.system:")
    print(
        "   types it names outside the allow-list: "
        f"{sorted(skops_audit.skops_types(hostile) - skops_audit.SKOPS_TRUSTED)}"
    )
    print(f"   skops itself also flags: {sio.get_untrusted_types(data=hostile)}")
    try:
        skops_audit.loads(hostile)
    except errors.UntrustedTypeError as exc:
        print(f"   skops_audit.loads -> UntrustedTypeError: {exc}")
    else:
        sys.exit("LESSON FAILED: skops_audit.loads should refuse os.system")

    print(
        "\nLesson: never unpickle bytes you do not trust: loading IS running code. Check the sha256 against a"
        "\nsigned manifest before deserialising, and prefer skops or ONNX for models from untrusted sources."
    )


if __name__ == "__main__":
    main()
