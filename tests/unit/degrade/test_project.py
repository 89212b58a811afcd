"""LR-consistency projection (iterative back-projection): the output downsamples to its LR, the HR itself
is (nearly) a fixed point, detail above the LR's band stays, and the option reaches every model with a
known operator through the engine (and is refused, in one line, for blind ones)."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import facesr
from facesr.cli import main
from facesr.degrade.protocol import LRProtocol
from facesr.errors import FacesrError
from facesr.io.images import list_images, read_image, to_tensor, to_uint8
from facesr.metrics.image_quality import laplacian_energy


SAMPLE_FACES = Path(__file__).resolve().parents[3] / "src" / "facesr" / "samples" / "faces"


def _consistency(protocol, sr, lr):
    """MSE(down(SR), LR) on the 0-255 scale, as the benchmark's consistency metric."""
    return float(((protocol.operator.down(sr) - lr) * 255).pow(2).mean())


@pytest.fixture(scope="module")
def faces():
    return torch.stack([to_tensor(read_image(p)) for p in list_images(SAMPLE_FACES)])


@pytest.mark.parametrize("operator,scale", [("bicubic", 8), ("bicubic", 4), ("tf-bilinear", 8)])
def test_projection_makes_an_estimate_consistent_and_keeps_its_detail(faces, operator, scale):
    """Estimates off at low frequencies, as SR outputs are: too bright, too smooth (the errors of a 2-px shift,
    near the LR's Nyquist frequency, converge slowly: the docstring says so)."""
    protocol = LRProtocol.of(operator, scale)
    lr = protocol.operator_lr(faces)
    smooth = F.interpolate(F.avg_pool2d(faces, 4), scale_factor=4, mode="bilinear", align_corners=False)
    for guess in (faces * 0.9 + 0.08, smooth):
        before = _consistency(protocol, guess, lr)
        errors = [_consistency(protocol, protocol.project(guess, lr, rounds), lr) for rounds in (1, 2, 3, 10)]
        assert before > 5 and errors[0] < before / 4
        assert errors[3] <= errors[2] <= errors[1] <= errors[0] and errors[2] < 0.25 and errors[3] < 0.05
    # the correction is the upsampled LR residual: the estimate's fine detail (Laplacian energy) is kept
    g = torch.Generator().manual_seed(0)
    textured = (faces * 0.9 + 0.08 + 0.02 * torch.randn(faces.shape, generator=g)).clamp(0, 1)
    for a, b in zip(textured, protocol.project(textured, lr, 3)):
        assert abs(laplacian_energy(to_uint8(b)) / laplacian_energy(to_uint8(a)) - 1) < 0.05


def test_the_hr_is_nearly_a_fixed_point(faces):
    protocol = LRProtocol.of("bicubic", 8)
    out = protocol.project(faces, protocol.operator_lr(faces), 3)
    assert (out - faces).abs().mean() * 255 < 0.5  # levels: only the LR's 8-bit rounding is put back


def test_a_blind_protocol_has_no_projection(faces):
    with pytest.raises(FacesrError, match="blind"):
        LRProtocol.of("bicubic", 4, "deepfacesr").project(faces[:1], faces[:1, :, :32, :32], 1)


def test_upscale_with_project_gives_consistent_outputs(faces):
    protocol = LRProtocol.of("bicubic", 8)
    lrs = [to_uint8(x) for x in protocol.operator_lr(faces)]
    plain = facesr.upscale(lrs, model="msrresnet-x8", precision="fp32")
    projected = facesr.upscale(lrs, model="msrresnet-x8", precision="fp32", project=3)
    for a, b, lr in zip(plain, projected, lrs):
        lr = to_tensor(lr)[None]
        assert _consistency(protocol, to_tensor(a)[None], lr) > 0.3
        assert _consistency(protocol, to_tensor(b)[None], lr) < 0.1  # 8-bit output rounding included
    with pytest.raises(FacesrError, match="blind"):
        facesr.upscale(lrs[:1], model="msrresnet-x4-blind", project=2)
    with pytest.raises(FacesrError, match="project must be 0 or more"):
        facesr.upscale(lrs[:1], model="msrresnet-x8", project=-1)


def test_cli_refuses_a_negative_projection_in_one_line(tmp_path, capsys):
    lr = tmp_path / "lr.png"
    from PIL import Image

    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(lr)
    assert main(["upscale", str(lr), "-o", str(tmp_path / "out"), "--model", "msrresnet-x8", "--project", "-1"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 1 and "project must be 0 or more" in err[0]
