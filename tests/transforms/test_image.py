"""Image transforms beyond the generic tests: layouts, masks, conditioning and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tractable import transforms as T
from tractable.nn import ConvResNet
from tractable.transforms.image import (
    ImageCoupling,
    InvConv1x1,
    InvConv1x1LU,
    Pixelwise,
    Squeeze,
    checkerboard,
)

from .registry import randomize


def test_squeeze_layout() -> None:
    x = torch.arange(2 * 4 * 6.0).view(1, 2, 4, 6)
    z, ladj = Squeeze()(x)
    assert z.shape == (1, 8, 2, 3) and ladj.tolist() == [0.0]
    # channel 4c + 2i + j, position (h, w) holds x[c, 2h + i, 2w + j]
    for c in range(2):
        for i in range(2):
            for j in range(2):
                assert torch.equal(z[0, 4 * c + 2 * i + j], x[0, c, i::2, j::2])
    assert Squeeze().output_shape((2, 4, 6)) == (8, 2, 3)


@pytest.mark.parametrize("shape", [(1, 2, 3, 4), (1, 2, 4, 5), (1, 1, 1, 1)])
def test_squeeze_rejects_odd_sizes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"x: squeezing needs an even height and width"):
        Squeeze()(torch.randn(shape))


def test_image_transforms_reject_non_images() -> None:
    with pytest.raises(ValueError, match=r"x: expected an image batch of shape \(N, C, H, W\)"):
        Squeeze()(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"z: un-squeezing needs channels divisible by 4"):
        Squeeze().inverse(torch.randn(1, 6, 2, 2))
    with pytest.raises(ValueError, match=r"x: expected an image batch"):
        InvConv1x1(2)(torch.randn(3, 2))


def test_inv_conv_is_a_channel_matrix_product() -> None:
    t = InvConv1x1(3)
    randomize(t)
    x = torch.randn(2, 3, 4, 5)
    z, ladj = t(x)
    torch.testing.assert_close(z, torch.einsum("dc,nchw->ndhw", t.weight, x))
    expected = 20 * torch.linalg.slogdet(t.weight).logabsdet
    torch.testing.assert_close(ladj, expected.expand(2), atol=1e-10, rtol=0)


def test_inv_conv_lu_matches_its_dense_weight() -> None:
    t = InvConv1x1LU(4)
    randomize(t)
    x = torch.randn(2, 4, 3, 3)
    z, ladj = t(x)
    lin = t.pixel_transform
    w = lin.weight()
    expected = F.conv2d(x, w.view(4, 4, 1, 1), lin.bias)
    torch.testing.assert_close(z, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj, 9 * torch.linalg.slogdet(w).logabsdet.expand(2))


def test_inv_conv_float32_log_det() -> None:
    t = InvConv1x1(8).float()
    z, ladj = t(torch.randn(2, 8, 4, 4, dtype=torch.float32))
    assert z.dtype == ladj.dtype == torch.float32
    # initialised at a rotation: |det W| = 1
    assert ladj.abs().max() < 1e-4


def test_pixelwise_applies_the_vector_transform_at_every_pixel() -> None:
    inner = T.MaskedAffineAutoregressive(3, context=2, hidden=(8,))
    randomize(inner)
    t = Pixelwise(inner)
    x, c = torch.randn(2, 3, 2, 3), torch.randn(2, 2)
    z, ladj = t(x, c)
    for n in range(2):
        total = 0.0
        for h in range(2):
            for w in range(3):
                zp, lp = inner(x[n : n + 1, :, h, w], c[n : n + 1])
                torch.testing.assert_close(z[n, :, h, w], zp[0])
                total = total + lp[0]
        torch.testing.assert_close(ladj[n], total)
    with pytest.raises(ValueError, match="transform: expected a vector transform"):
        Pixelwise(Squeeze())
    with pytest.raises(TypeError, match="transform: expected a Transform"):
        Pixelwise(torch.nn.Linear(2, 2))


def test_conv_resnet_starts_at_zero() -> None:
    net = ConvResNet(3, 5, hidden=8, blocks=2)
    assert torch.equal(net(torch.randn(2, 3, 4, 4)), torch.zeros(2, 5, 4, 4))
    with pytest.raises(ValueError, match="hidden: expected an int >= 1"):
        ConvResNet(3, 5, hidden=0)


def test_checkerboard() -> None:
    m = checkerboard(3, 3)
    assert m.tolist() == [[True, False, True], [False, True, False], [True, False, True]]
    assert torch.equal(checkerboard(3, 3, flip=True), ~m)


@pytest.mark.parametrize("mask", ["checkerboard", "checkerboard-flip", "channel", "channel-flip"])
@pytest.mark.parametrize("elementwise", [T.Affine(), T.Shift()])
def test_image_coupling_is_the_identity_at_initialisation(mask: str, elementwise) -> None:
    t = ImageCoupling(4, elementwise, mask, hidden=8)
    x = torch.randn(3, 4, 4, 4)
    z, ladj = t(x)
    assert torch.equal(z, x) and torch.equal(ladj, torch.zeros(3))


def _kept(mask: str, x: torch.Tensor) -> torch.Tensor:
    """A boolean tensor like x, true where the mask keeps x unchanged."""
    _, c, h, w = x.shape
    if mask.startswith("checkerboard"):
        return checkerboard(h, w, mask.endswith("flip")).expand_as(x)
    keep = torch.zeros(c, dtype=torch.bool)
    if mask == "channel":
        keep[: c // 2] = True
    else:
        keep[c // 2 :] = True
    return keep.view(1, c, 1, 1).expand_as(x)


@pytest.mark.parametrize("mask", ["checkerboard", "checkerboard-flip", "channel", "channel-flip"])
def test_image_coupling_masks(mask: str) -> None:
    t = ImageCoupling(3, T.Affine(), mask, hidden=8)
    randomize(t)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    z, _ = t(x)
    kept = _kept(mask, x)
    assert torch.equal(z[kept], x[kept])
    assert (z[~kept] - x[~kept]).abs().min() > 0
    # the transformed entries depend on the kept ones only (and on themselves)
    z[~kept].sum().backward()
    assert x.grad[kept].abs().sum() > 0
    # the kept outputs are the kept inputs and depend on nothing else
    grad_self = torch.autograd.grad(t(x)[0][kept].sum(), x)[0]
    assert torch.equal(grad_self, kept.to(x.dtype))


def test_image_coupling_context() -> None:
    t = ImageCoupling(2, T.Affine(), "checkerboard", context=3, hidden=8)
    randomize(t)
    x, c = torch.randn(2, 2, 4, 4), torch.randn(2, 3)
    z1, l1 = t(x, c)
    z2, l2 = t(x, c + 1.0)
    assert not torch.allclose(z1, z2) and not torch.allclose(l1, l2)
    # a vector context is the same as its broadcast feature map
    z3, l3 = t(x, c[:, :, None, None].expand(2, 3, 4, 4))
    assert torch.equal(z1, z3) and torch.equal(l1, l3)
    with pytest.raises(ValueError, match="context: this layer is conditional"):
        t(x)
    with pytest.raises(ValueError, match=r"context: expected shape \(2, 3\) or \(2, 3, 4, 4\)"):
        t(x, torch.randn(2, 4))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ImageCoupling(2, T.Affine(), "stripes"), ValueError, "mask: expected one of"),
        (lambda: ImageCoupling(1, T.Affine(), "channel"), ValueError, "channels: a channel mask"),
        (lambda: ImageCoupling(0, T.Affine()), ValueError, "channels: expected an int >= 1"),
        (lambda: ImageCoupling(2, "affine"), TypeError, "elementwise: expected"),
        (lambda: ImageCoupling(2, T.Affine(), context=-1), ValueError, "context: expected"),
    ],
)
def test_image_coupling_bad_arguments(call, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_image_coupling_bad_input() -> None:
    t = ImageCoupling(2, T.Affine(), "checkerboard", hidden=4)
    with pytest.raises(ValueError, match="x: expected 2 channels, got 3"):
        t(torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match="x: a checkerboard mask needs at least 2 pixels"):
        t(torch.randn(1, 2, 1, 1))
