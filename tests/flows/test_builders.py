"""Tests every flow builder: density normalisation on a grid, sampling consistency, context,
temperature, save/load, device/dtype, and bad input."""

from __future__ import annotations

import math

import pytest
import safetensors.torch
import torch

import tractable as tr
from tractable.registry import MODELS, get_entry

from ..transforms.registry import randomize

SMALL = {"hidden": (16, 16), "transforms": 3}
BUILDERS = {
    "nice": tr.flows.NICE,
    "realnvp": tr.flows.RealNVP,
    "maf": tr.flows.MAF,
    "iaf": tr.flows.IAF,
    "nsf": tr.flows.NSF,
    "planar": tr.flows.Planar,
    "radial": tr.flows.Radial,
}
BUILDERS_2D = {
    "nice": dict(SMALL),
    "realnvp": dict(SMALL),
    "maf": dict(SMALL),
    "iaf": dict(SMALL),
    "nsf-ar": dict(SMALL, variant="autoregressive", bins=4),
    "nsf-c": dict(SMALL, variant="coupling", bins=4),
    "planar": {"transforms": 4},
    "radial": {"transforms": 4},
}
ONE_D = {"maf", "iaf", "nsf-ar", "planar", "radial"}


def make(key: str, features: int = 2, scale: float = 0.2, **extra: object) -> tr.flows.Flow:
    name = key.split("-")[0]
    flow = BUILDERS[name](features, **BUILDERS_2D[key], **extra)
    randomize(flow, scale)
    return flow


def test_every_builder_is_tested() -> None:
    vector_flows = {n for n, e in MODELS.items() if e.family == "flow"}
    assert {k.split("-")[0] for k in BUILDERS_2D} == set(BUILDERS) == vector_flows
    assert all(MODELS[n].builder() is BUILDERS[n] for n in vector_flows)


@pytest.mark.parametrize("key", sorted(BUILDERS_2D))
def test_density_integrates_to_one_in_2d(key: str) -> None:
    flow = make(key).eval()
    L, n = 9.0, 300
    g = torch.linspace(-L, L, n)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        p = flow.log_prob(pts).exp()
    mass = float(p.sum() * (g[1] - g[0]) ** 2)
    assert abs(mass - 1) < 0.01, f"{key}: density integrates to {mass}"


@pytest.mark.parametrize("key", sorted(ONE_D))
def test_density_integrates_to_one_in_1d(key: str) -> None:
    flow = make(key, features=1).eval()
    g = torch.linspace(-12, 12, 20001).unsqueeze(1)
    with torch.no_grad():
        p = flow.log_prob(g).exp()
    mass = float(torch.trapezoid(p, g[:, 0]))
    assert abs(mass - 1) < 0.01, f"{key}: density integrates to {mass}"


@pytest.mark.parametrize("key", sorted(BUILDERS_2D))
def test_sample_and_log_prob_agrees_with_log_prob(key: str) -> None:
    flow = make(key).eval()
    with torch.no_grad():
        x, log_p = flow.sample_and_log_prob(50)
        assert x.shape == (50, 2) and log_p.shape == (50,)
        torch.testing.assert_close(flow.log_prob(x), log_p, atol=1e-6, rtol=0)
        x, log_p = flow.sample_and_log_prob(20, temperature=0.5)
        torch.testing.assert_close(flow.log_prob(x), log_p, atol=1e-6, rtol=0)


@pytest.mark.parametrize("key", sorted(BUILDERS_2D))
def test_public_surface(key: str) -> None:
    flow = make(key).eval()
    x = torch.randn(7, 2)
    z, ladj = flow.transform(x)
    assert z.shape == (7, 2) and ladj.shape == (7,)
    torch.testing.assert_close(flow.inverse(z), x, atol=1e-6, rtol=0)
    assert flow.sample(3).shape == (3, 2)
    loss = flow.loss(x)
    assert loss.dim() == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("key", sorted(BUILDERS_2D))
def test_conditional(key: str) -> None:
    flow = make(key, context=3, scale=0.5).eval()
    x, c = torch.randn(6, 2), torch.randn(6, 3)
    lp = flow.log_prob(x, c)
    assert lp.shape == (6,)
    assert not torch.allclose(lp, flow.log_prob(x, c + 1.0)), "context has no effect"
    samples = flow.sample(4, context=c[:2])
    assert samples.shape == (2, 4, 2)
    xs, lps = flow.sample_and_log_prob(5, context=c[:3])
    assert xs.shape == (3, 5, 2) and lps.shape == (3, 5)
    torch.testing.assert_close(
        flow.log_prob(xs.reshape(15, 2), c[:3].repeat_interleave(5, 0)),
        lps.reshape(15),
        atol=1e-6,
        rtol=0,
    )
    assert flow.loss((x, c)).dim() == 0


def test_embedding_network() -> None:
    emb = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh())
    flow = tr.flows.MAF(2, context=5, embedding=emb, hidden=(8,))
    randomize(flow)
    assert flow.log_prob(torch.randn(3, 2), torch.randn(3, 5)).shape == (3,)
    # the embedding's parameters are part of the model and get gradients
    flow.loss((torch.randn(3, 2), torch.randn(3, 5))).backward()
    assert emb[0].weight.grad is not None and emb[0].weight.grad.abs().sum() > 0


def test_temperature_scales_the_spread() -> None:
    flow = tr.flows.MAF(2, hidden=(8,))  # identity at initialisation
    s1 = flow.sample(4000).std(0)
    s05 = flow.sample(4000, temperature=0.5).std(0)
    torch.testing.assert_close(s05 / s1, torch.full((2,), 0.5), atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="temperature"):
        flow.sample(3, temperature=0.0)


@pytest.mark.parametrize("key", sorted(BUILDERS_2D))
def test_save_load_round_trip(key: str, tmp_path) -> None:
    flow = make(key)
    flow.loss(torch.randn(16, 2))  # data-dependent layers initialise
    flow.eval()
    path = tmp_path / "flow.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in flow.state_dict().items()}, path)
    other = BUILDERS[key.split("-")[0]](2, **BUILDERS_2D[key])
    other.load_state_dict(safetensors.torch.load_file(path))
    other.eval()
    x = torch.randn(9, 2)
    assert torch.equal(flow.log_prob(x), other.log_prob(x))


def test_actnorm_initialised_state_survives_a_round_trip(tmp_path) -> None:
    flow = tr.flows.RealNVP(2, norm="act", hidden=(8,), transforms=2)
    data = 5 + 3 * torch.randn(256, 2)
    flow.log_prob(data)  # initialises ActNorm on this batch
    state = {k: v.contiguous() for k, v in flow.state_dict().items()}
    path = tmp_path / "f.safetensors"
    safetensors.torch.save_file(state, path)
    other = tr.flows.RealNVP(2, norm="act", hidden=(8,), transforms=2)
    other.load_state_dict(safetensors.torch.load_file(path))
    x = torch.randn(4, 2)  # a batch with other statistics must not re-initialise
    assert torch.equal(flow.log_prob(x), other.log_prob(x))


@pytest.mark.parametrize("key", ["maf", "nsf-c", "realnvp"])
def test_float32_and_device_move(key: str) -> None:
    flow = make(key).to(torch.float32).to("cpu")
    x = torch.randn(4, 2, dtype=torch.float64)  # cast to the model's dtype
    assert flow.log_prob(x).dtype == torch.float32
    assert flow.sample(2).dtype == torch.float32


def test_integer_input_is_cast() -> None:
    flow = tr.flows.MAF(2, hidden=(8,))
    assert flow.log_prob(torch.tensor([[1, 2], [0, 0]])).dtype == torch.get_default_dtype()


@pytest.mark.parametrize(
    "x, context, match",
    [
        (torch.full((2, 2), math.nan), None, "x: expected finite"),
        (torch.tensor([[math.inf, 0.0]]), None, "x: expected finite"),
        (torch.randn(3, 5), None, r"x: expected shape \(N, 2\), got \(3, 5\)"),
        (torch.randn(2), None, "x: expected shape.*add a batch dimension"),
    ],
)
def test_bad_input_unconditional(x: torch.Tensor, context: object, match: str) -> None:
    flow = tr.flows.RealNVP(2, hidden=(8,))
    with pytest.raises(ValueError, match=match):
        flow.log_prob(x, context)
    with pytest.raises(ValueError, match=match):
        flow.transform(x, context)


def test_bad_input_types_and_context() -> None:
    flow = tr.flows.MAF(2, context=3, hidden=(8,))
    x = torch.randn(4, 2)
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        flow.log_prob([[0.0, 1.0]], torch.randn(1, 3))
    with pytest.raises(TypeError, match="x: expected a real floating tensor"):
        flow.log_prob(torch.zeros(4, 2, dtype=torch.complex64), torch.randn(4, 3))
    with pytest.raises(ValueError, match="context: this model is conditional"):
        flow.log_prob(x)
    with pytest.raises(ValueError, match=r"context: expected shape \(N, 3\), got \(4, 2\)"):
        flow.log_prob(x, torch.randn(4, 2))
    with pytest.raises(ValueError, match="context: expected 4 rows"):
        flow.log_prob(x, torch.randn(5, 3))
    with pytest.raises(ValueError, match="context: expected finite"):
        flow.log_prob(x, torch.full((4, 3), math.nan))
    with pytest.raises(ValueError, match="context: this model is unconditional"):
        tr.flows.MAF(2, hidden=(8,)).log_prob(x, torch.randn(4, 3))
    with pytest.raises(ValueError, match="n: expected an int >= 0"):
        flow.sample(-1, torch.randn(1, 3))
    assert flow.sample(0, torch.randn(1, 3)).shape == (1, 0, 2)  # torch's empty convention


def test_validation_can_be_switched_off() -> None:
    flow = tr.flows.MAF(2, hidden=(8,))
    bad = torch.full((2, 2), math.nan)
    with tr.validation(False):
        assert torch.isnan(flow.log_prob(bad)).all()
    with pytest.raises(ValueError):
        flow.log_prob(bad)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: tr.flows.RealNVP(1), "features: coupling flows need at least 2"),
        (lambda: tr.flows.MAF(0), "features: expected an int >= 1"),
        (lambda: tr.flows.MAF(2, transforms=0), "transforms: expected an int >= 1"),
        (lambda: tr.flows.MAF(2, hidden=(0,)), "hidden: expected a sequence of positive"),
        (lambda: tr.flows.MAF(2, permutation="spin"), "permutation: expected"),
        (lambda: tr.flows.NSF(2, variant="x"), "variant: expected"),
        (lambda: tr.flows.NSF(2, bins=0), "bins: expected an int >= 1"),
        (lambda: get_entry("glowing"), "model: unknown model 'glowing'"),
        (lambda: tr.flows.MAF(2, context=-1), "context: expected an int >= 0"),
        (lambda: tr.flows.Planar(2, hidden=(3,)), "hidden: planar flows have no hidden"),
        (lambda: tr.flows.RealNVP(2, norm="layer"), "norm: expected"),
    ],
)
def test_bad_builder_arguments(call, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_maf_density_is_one_pass_and_iaf_sampling_is_one_pass() -> None:
    """MAF evaluates its MADE once per layer for log_prob and D times for sampling; IAF the
    reverse. Counted with forward hooks."""
    D = 5
    for name, expect_lp, expect_sample in (("maf", 1, D), ("iaf", D, 1)):
        flow = BUILDERS[name](D, transforms=1, hidden=(8,))
        made = flow.layers[0].made if name == "maf" else flow.layers[0].base_transform.made
        calls: list[int] = []
        made.register_forward_hook(lambda *a, calls=calls: calls.append(1))
        flow.log_prob(torch.randn(3, D))
        assert len(calls) == expect_lp
        calls.clear()
        flow.sample(3)
        assert len(calls) == expect_sample
