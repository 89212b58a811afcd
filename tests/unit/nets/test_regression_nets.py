"""MSRResNet / EDSR: parameter counts of the reference configurations, shapes at any scale."""

import pytest
import torch

from facesr.errors import FacesrError
from facesr.nets import NETS
from facesr.nets.regression import EDSR, MSRResNet, RegressionNetConfig, count_parameters, pixel_shuffle_factors


@pytest.mark.parametrize("blocks, params", [(16, 1_517_571), (20, 1_812_995), (24, 2_108_419)])
def test_msrresnet_parameter_counts_match_basicsr_x4(blocks, params):
    assert count_parameters(MSRResNet(64, blocks, 4)) == params


def test_edsr_b16_x4_parameter_count():
    assert count_parameters(EDSR(64, 16, 4)) == 1_517_571


@pytest.mark.parametrize("scale, factors", [(1, []), (2, [2]), (3, [3]), (4, [2, 2]), (6, [2, 3]), (8, [2, 2, 2]), (5, [5])])
def test_pixel_shuffle_factors(scale, factors):
    assert pixel_shuffle_factors(scale) == factors


@pytest.mark.parametrize("arch", ["msrresnet", "edsr"])
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_output_shape_any_scale(arch, scale):
    net = NETS.get(arch)(RegressionNetConfig(arch=arch, num_feat=16, num_blocks=2), scale)
    with torch.no_grad():
        assert net(torch.rand(2, 3, 6, 5)).shape == (2, 3, 6 * scale, 5 * scale)


def test_msrresnet_starts_near_bilinear():
    """With its small initial weights the network output is close to the bilinear skip."""
    torch.manual_seed(0)
    net = MSRResNet(16, 2, 4)
    x = torch.rand(1, 3, 8, 8)
    bilinear = torch.nn.functional.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert (net(x) - bilinear).abs().max() < 0.05


def test_edsr_mean_shift_is_undone():
    """With the body and upsampler zeroed, EDSR returns exactly the DIV2K mean image."""
    net = EDSR(16, 1, 2)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        out = net(torch.rand(1, 3, 4, 4))
    assert torch.allclose(out, net.mean.expand_as(out))


def test_bad_config():
    with pytest.raises(FacesrError):
        RegressionNetConfig(arch="srcnn")
    with pytest.raises(FacesrError):
        NETS.get("msrresnet")(RegressionNetConfig(), 0)
    with pytest.raises(FacesrError, match="unknown network 'srcnn'"):
        NETS.get("srcnn")
