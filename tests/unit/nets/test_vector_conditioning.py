"""FASR identity conditioning: a per-channel bias in every ResBlock, against a direct reference."""

import pytest
import torch

from facesr.errors import FacesrError
from facesr.nets.unet import ConditionalUNet, UNetConfig, normalise_vector


def nets(vector_dim=8, **kw):
    torch.manual_seed(0)
    # 8 groups of 4 channels: with one channel per group, GroupNorm would cancel any per-channel bias
    base = dict(block_out_channels=(32, 32), attention_levels=(1,), cond_images=1, norm_num_groups=8, attention_head_dim=8)
    cond = ConditionalUNet(UNetConfig(vector_dim=vector_dim, **base, **kw))
    plain = ConditionalUNet(UNetConfig(**base))
    missing, unexpected = cond.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("vector_proj", "vector_bias")) for k in missing)
    return cond, plain


def resblocks(net):
    return [m for m in net.unet.modules() if hasattr(m, "time_emb_proj") and m.time_emb_proj is not None]


def test_one_dense_per_resblock_zero_initialised_so_it_starts_unconditioned():
    cond, plain = nets()
    assert len(cond.vector_bias) == len(resblocks(cond)) == 8  # 2 down + 2 mid + 2 x 2 up (layers_per_block + 1 per level)
    x, t, c = torch.randn(2, 3, 16, 16), torch.tensor([3.0, 700.0]), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(cond(x, t, c, torch.randn(2, 8)), plain(x, t, c), atol=1e-6)


def test_vector_is_a_per_channel_bias_after_the_first_conv():
    """Reference: adding Dense_i(SiLU(p)) to each time_emb_proj bias of the plain network (batch of 1)."""
    cond, plain = nets()
    for dense in cond.vector_bias:
        torch.nn.init.normal_(dense.weight, std=0.3)
        torch.nn.init.normal_(dense.bias, std=0.3)
    x, t, c, v = torch.randn(1, 3, 16, 16), torch.tensor([250.0]), torch.rand(1, 3, 16, 16), torch.randn(1, 8)
    with torch.no_grad():
        got = cond(x, t, c, v)
        assert not torch.allclose(got, cond(x, t, c, torch.zeros(1, 8)), atol=1e-3)  # the vector matters
        p = cond.project_vector(v)
        for dense, block in zip(cond.vector_bias, resblocks(plain)):
            block.time_emb_proj.bias += dense(torch.nn.functional.silu(p))[0]
        want = plain(x, t, c)
    assert torch.allclose(got, want, atol=1e-5)


def test_minmax_matches_a_loop_is_affine_invariant_and_safe_on_constants():
    f = torch.randn(5, 16)
    f[4] = 0.7  # max = min
    loop = []
    for row in f:
        lo, hi = row.min(), row.max()
        loop.append((row - lo) / (hi - lo) if hi > lo else torch.zeros_like(row))
    got = normalise_vector(f, "minmax")
    assert torch.allclose(got, torch.stack(loop)) and torch.isfinite(got).all()
    assert torch.allclose(normalise_vector(3 * f[:4] - 2, "minmax"), got[:4], atol=1e-6)
    assert torch.allclose(normalise_vector(f[:4], "l2").norm(dim=1), torch.ones(4))
    assert torch.equal(normalise_vector(f, "none"), f)


def test_shared_linear_parity_uses_the_time_mlp():
    net = ConditionalUNet(UNetConfig(block_out_channels=(32, 32), attention_levels=(), vector_dim=128,
                                     vector_norm="minmax", vector_shared_linear=True))
    assert net.vector_proj is None
    f = torch.randn(3, 128)
    want = net.unet.time_embedding.linear_2(torch.nn.functional.silu(normalise_vector(f, "minmax")))
    assert torch.allclose(net.project_vector(f), want)
    with pytest.raises(FacesrError, match="vector_shared_linear needs vector_dim"):
        UNetConfig(block_out_channels=(32, 32), attention_levels=(), vector_dim=512, vector_shared_linear=True)


def test_wrong_or_missing_vector_is_one_clear_error():
    cond, _ = nets()
    x, t, c = torch.randn(2, 3, 16, 16), torch.ones(2), torch.rand(2, 3, 16, 16)
    with pytest.raises(FacesrError, match="needs an identity vector"):
        cond(x, t, c)
    with pytest.raises(FacesrError, match="expected \\(2, 8\\)"):
        cond(x, t, c, torch.randn(2, 9))
    with pytest.raises(FacesrError, match="vector_norm"):
        UNetConfig(vector_dim=8, vector_norm="zscore")
