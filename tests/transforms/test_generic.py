"""Generic property tests, run in float64 on every registered transform (see registry.py)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import safetensors.torch
import torch

import tractable
from tractable import transforms as T

from .registry import ABSTRACT, CASES, Case

ATOL = 1e-6
ids = [c.name for c in CASES]


def _all_subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out.add(sub)
        out |= _all_subclasses(sub)
    return out


def test_registry_is_complete() -> None:
    for mod in pkgutil.walk_packages(tractable.__path__, "tractable."):
        if mod.name != "tractable.__main__":  # importing it runs the command line
            importlib.import_module(mod.name)
    covered = {cls for case in CASES for cls in case.covers}
    missing = {
        cls
        for cls in _all_subclasses(T.Transform)
        if cls not in covered and cls not in ABSTRACT and cls.__module__.startswith("tractable")
    }
    assert not missing, (
        f"transforms without a generic-test case: {sorted(c.__name__ for c in missing)}"
    )
    maps = {cls for case in CASES for cls in case.maps}
    assert maps == {T.Shift, T.Affine, T.RQSpline}


@pytest.fixture(params=CASES, ids=ids)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


def _per_example_jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    """(N, D, D) Jacobians of a map of examples (N, *shape), D = prod(shape), from the autograd
    Jacobian of the whole batch with every example flattened."""
    n, D = x.shape[0], x[0].numel()
    J = torch.autograd.functional.jacobian(fn, x).reshape(n, D, n, D)
    idx = torch.arange(n)
    return J[idx, :, idx, :]


def test_invertibility(case: Case) -> None:
    t = case.build()
    x = case.inputs()
    c = case.contexts(x.shape[0])
    with torch.no_grad():
        z, ladj = t(x, c)
        x_back, ladj_inv = t.inverse(z, c)
    assert z.shape == (x.shape[0], *case.out_shape) and ladj.shape == (x.shape[0],)
    torch.testing.assert_close(x_back, x, atol=ATOL, rtol=0)
    torch.testing.assert_close(ladj_inv, -ladj, atol=ATOL, rtol=0)


def test_inverse_then_forward(case: Case) -> None:
    t = case.build()
    with torch.no_grad():
        # points of the noise space: images of domain points, plus fresh normal draws where
        # the codomain is the whole real line
        z = t(case.inputs(), case.contexts(case.inputs().shape[0]))[0]
        c = case.contexts(z.shape[0])
        x, ladj_inv = t.inverse(z, c)
        z_back, ladj = t(x, c)
    torch.testing.assert_close(z_back, z, atol=ATOL, rtol=0)
    torch.testing.assert_close(ladj, -ladj_inv, atol=ATOL, rtol=0)


def test_ladj_matches_autograd_jacobian(case: Case) -> None:
    t = case.build()
    x = case.inputs(8)
    c = case.contexts(x.shape[0])
    J = _per_example_jacobian(lambda v: t(v, c)[0], x)
    expected = torch.linalg.slogdet(J).logabsdet
    ladj = t(x, c)[1].detach()
    torch.testing.assert_close(ladj, expected, atol=ATOL, rtol=0)


def test_inverse_ladj_matches_autograd_jacobian(case: Case) -> None:
    t = case.build()
    with torch.no_grad():
        z = t(case.inputs(8), case.contexts(case.inputs(8).shape[0]))[0]
    c = case.contexts(z.shape[0])
    J = _per_example_jacobian(lambda v: t.inverse(v, c)[0], z)
    expected = torch.linalg.slogdet(J).logabsdet
    torch.testing.assert_close(t.inverse(z, c)[1].detach(), expected, atol=ATOL, rtol=0)


def test_batch_shapes(case: Case) -> None:
    t = case.build()
    for n in (1, 5):
        x = case.inputs(n)[:n]
        z, ladj = t(x, case.contexts(n))
        assert z.shape == (n, *case.out_shape) and ladj.shape == (n,)
        xb, lb = t.inverse(z, case.contexts(n))
        assert xb.shape == (n, *case.shape) and lb.shape == (n,)


def test_finite_on_large_inputs(case: Case) -> None:
    t = case.build()
    if case.domain == "real":
        x = 50.0 * torch.randn(32, *case.shape)
    else:
        x = case.inputs(32)
    c = case.contexts(x.shape[0])
    with torch.no_grad():
        z, ladj = t(x, c)
    assert torch.isfinite(z).all() and torch.isfinite(ladj).all()


def test_gradients_reach_every_parameter(case: Case) -> None:
    t = case.build()
    x = case.inputs().requires_grad_(True)
    z, ladj = t(x, case.contexts(x.shape[0]))
    (z.pow(2).sum() - ladj.sum()).backward()
    assert torch.isfinite(x.grad).all()
    for name, p in t.named_parameters():
        assert p.grad is not None, f"{name}: no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient"


def test_gradients_through_inverse_are_finite(case: Case) -> None:
    t = case.build()
    with torch.no_grad():
        z = t(case.inputs(), case.contexts(case.inputs().shape[0]))[0]
    z.requires_grad_(True)
    x, ladj = t.inverse(z, case.contexts(z.shape[0]))
    (x.pow(2).sum() + ladj.sum()).backward()
    assert torch.isfinite(z.grad).all()


def test_dtype_change(case: Case) -> None:
    t = case.build().to(torch.float32)
    x = case.inputs(4).to(torch.float32)
    c = case.contexts(x.shape[0])
    z, ladj = t(x, None if c is None else c.float())
    assert z.dtype == torch.float32 and ladj.dtype == torch.float32


def test_state_dict_round_trip(case: Case, tmp_path) -> None:
    t = case.build()
    fresh = case.build()
    randomize(fresh, 0.5)
    path = tmp_path / "t.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in t.state_dict().items()}, path)
    fresh.load_state_dict(safetensors.torch.load_file(path))
    x = case.inputs(8)
    c = case.contexts(x.shape[0])
    with torch.no_grad():
        za, la = t(x, c)
        zb, lb = fresh(x, c)
    assert torch.equal(za, zb) and torch.equal(la, lb)


from .registry import randomize  # noqa: E402  (used by the round-trip test above)
