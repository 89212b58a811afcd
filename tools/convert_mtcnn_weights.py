"""Convert MTCNN's weights from the facenet-pytorch 2.6.0 wheel (MIT) to safetensors for facesr.

The wheel is read as a zip file: facesr does not depend on facenet-pytorch (its metadata pins an
old torch). The .pt files are plain state dicts, loaded with weights_only=True.

    pip download facenet-pytorch==2.6.0 --no-deps -d /tmp/fnp
    python tools/convert_mtcnn_weights.py /tmp/fnp/facenet_pytorch-2.6.0-py3-none-any.whl
"""

import argparse
import hashlib
import io
import json
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / "src" / "facesr" / "weights" / "mtcnn"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("wheel")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    wheel = Path(args.wheel)
    sources = {}
    with zipfile.ZipFile(wheel) as z:
        for name in ("pnet", "rnet", "onet"):
            data = z.read(f"facenet_pytorch/data/{name}.pt")
            state = torch.load(io.BytesIO(data), weights_only=True)
            save_file({k: v.contiguous() for k, v in state.items()}, str(OUT / f"{name}.safetensors"),
                      metadata={"source": f"{wheel.name}:facenet_pytorch/data/{name}.pt"})
            sources[name] = hashlib.sha256(data).hexdigest()
        licence = z.read("facenet_pytorch-2.6.0.dist-info/LICENSE.md").decode()
    (OUT / "LICENSE").write_text(
        "MTCNN weights: converted from the facenet-pytorch 2.6.0 wheel (facenet_pytorch/data/*.pt),\n"
        "themselves converted from the original MTCNN Caffe models (Zhang et al. 2016).\n"
        "Converted with tools/convert_mtcnn_weights.py; the networks are defined in facesr.identity.mtcnn.\n\n"
        + licence)
    (OUT / "sources.json").write_text(json.dumps({"wheel": wheel.name, "sha256_of_pt_files": sources}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
