"""identity.guidance: projected gradient steps toward an identity, against a direct computation."""

import pytest
import torch
import torch.nn.functional as F

from facesr.degrade.protocol import LRProtocol
from facesr.errors import FacesrError
from facesr.identity.guidance import IdentityRefine, gaussian_blur, toward_identity


class LinearEmbedder(torch.nn.Module):
    """A differentiable stand-in for dlib's network: unit W flatten(x)."""

    def __init__(self, pixels, dim=8, seed=0):
        super().__init__()
        self.w = torch.randn(dim, pixels, generator=torch.Generator().manual_seed(seed))

    def embed_chips(self, x):
        return F.normalize(x.flatten(1) @ self.w.T, dim=1)


def setup(batch=2, size=32, scale=4):
    protocol = LRProtocol.of("bicubic", scale)
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(batch, 3, size, size, generator=g)
    lr = protocol.operator.down(hr).clamp(0, 1)
    x = protocol.operator.up(lr).clamp(0, 1)
    net = LinearEmbedder(3 * size * size)
    target = F.normalize(torch.randn(batch, 8, generator=g), dim=1)
    return protocol, lr, x, net, target


def test_one_step_is_the_blurred_normalised_gradient_then_the_projection():
    protocol, lr, x, net, target = setup()
    refine = IdentityRefine(steps=1, step=0.01, blur=1.0, rounds=2)
    z = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((net.embed_chips(z) * target).sum(), z)
    grad = gaussian_blur(grad, 1.0)
    rms = grad.flatten(1).pow(2).mean(1).sqrt().view(-1, 1, 1, 1)
    expected = protocol.project(x + 0.01 * grad / rms, lr, 2).clamp(0, 1)
    torch.testing.assert_close(toward_identity(x, lr, target, protocol, refine, net), expected)


def test_steps_raise_the_cosine_keep_the_lr_and_leave_the_null_identity_alone():
    protocol, lr, x, net, target = setup(batch=3)
    target[2] = 0  # the null identity: that row stays as it was
    out = toward_identity(x, lr, target, protocol, IdentityRefine(steps=5, step=0.01), net)
    before, after = (net.embed_chips(x) * target).sum(1), (net.embed_chips(out) * target).sum(1)
    assert (after[:2] > before[:2] + 0.05).all()
    assert torch.equal(out[2], x[2])
    # the moved rows end consistent with their LR (the start, bicubic, is not): only detail above its band moved
    start, end = [(protocol.operator.down(img[:2]) - lr[:2]).abs().mean() for img in (x, out)]
    assert end < 0.002 < start and (out - x).abs().mean() > 0.01 and 0 <= out.min() and out.max() <= 1
    assert torch.equal(toward_identity(x, lr, target, protocol, IdentityRefine(steps=0), net), x)


def test_the_blur_is_a_normalised_gaussian():
    impulse = torch.zeros(1, 1, 21, 21)
    impulse[0, 0, 10, 10] = 1
    out = gaussian_blur(impulse, 1.5)[0, 0]
    t = torch.arange(-10, 11.0)
    k = torch.exp(-(t**2) / (2 * 1.5**2))
    k = torch.where(t.abs() <= 5, k, torch.zeros(()))  # radius 3 sigma
    torch.testing.assert_close(out, torch.outer(k, k) / k.sum() ** 2)
    flat = torch.full((1, 3, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 2.0), flat)
    assert torch.equal(gaussian_blur(impulse, 0), impulse)


@pytest.mark.parametrize("kw, message", [({"steps": -1}, "steps"), ({"steps": 1.5}, "steps"), ({"rounds": 0}, "rounds"),
                                         ({"step": -0.1}, "step"), ({"blur": True}, "blur")])
def test_bad_settings_are_refused_by_name(kw, message):
    with pytest.raises(FacesrError, match=f"identity_refine.{message}"):
        IdentityRefine(**kw)
