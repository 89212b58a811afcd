"""Fetch the project's independent identity judge (never committed or redistributed).

    python tools/fetch_judge.py        # what `make judge` runs

``npm pack faceplugin-face-recognition-js@0.0.1`` (MIT) into a temporary folder, take its
``model/fr_feature.onnx``, check its sha256 and write it atomically to $FACESR_JUDGES (default
~/.cache/facesr/judges). Nothing is done when the file is already there with the right checksum.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from facesr.identity.arcface import FACEPLUGIN, judges_dir
from facesr.io.weights import file_sha256


def main() -> int:
    target = judges_dir() / FACEPLUGIN["file"]
    if target.is_file() and file_sha256(target) == FACEPLUGIN["sha256"]:
        print(f"{target}: present, sha256 checked")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(["npm", "pack", FACEPLUGIN["package"], "--silent"], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"npm pack {FACEPLUGIN['package']}: failed ({exc})", file=sys.stderr)
            return 1
        tgz = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tgz) as tar:
            data = tar.extractfile(FACEPLUGIN["member"]).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != FACEPLUGIN["sha256"]:
        print(f"{FACEPLUGIN['package']}/{FACEPLUGIN['member']}: sha256 {digest}, expected {FACEPLUGIN['sha256']}",
              file=sys.stderr)
        return 1
    fd, tmp_path = tempfile.mkstemp(prefix=".facesr-tmp-", dir=target.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp_path, target)
    print(f"{target}: fetched from {FACEPLUGIN['package']}, sha256 checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
