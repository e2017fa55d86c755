"""Generic tests of the model protocol, run in float64 on every registered model (see cases.py).

Each test asks only what :mod:`tractable.protocol` promises, never which family it holds.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from tractable.protocol import ESTIMATORS, Model
from tractable.registry import MODELS, build_model
from tractable.train import TrainConfig, fit, load_latest_checkpoint, load_model, resume, save_model

from ..train.helpers import assert_bitwise_equal, params_of
from .cases import CASES, Case, takes_context

ids = [c.name for c in CASES]


def evaluation(model: nn.Module, x: Tensor, c: Tensor | None) -> Tensor:
    """What a model gives for data: its default estimate, or for a model without a likelihood
    its loss (both under the caller's seed), and samples under the same seed."""
    torch.manual_seed(3)
    value = model.estimate(x, c).values if type(model).estimators else model.loss(batch_of(x, c))
    torch.manual_seed(3)
    return torch.cat(
        [value.detach().reshape(-1), model.sample(2, c[:1] if c is not None else None).reshape(-1)]
    )


def randomize(model: nn.Module, scale: float = 0.2, seed: int = 1234) -> nn.Module:
    """Move every parameter off its (often identity) initialisation, deterministically, so
    that the consistency tests are not passed by an identity map."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def ready(case: Case) -> nn.Module:
    """A randomized model after one training-mode loss (data-dependent initialisation, e.g.
    ActNorm, happens on the first forward pass, as in training), in evaluation mode."""
    model = randomize(case.build()).train()
    with torch.no_grad():
        model.loss(batch_of(case.inputs(16, seed=10), case.contexts(16, seed=11)))
    return model.eval()


def batch_of(x: Tensor, c: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
    return x if c is None else (x, c)


@pytest.fixture(params=CASES, ids=ids)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


# -- the registry of cases --------------------------------------------------------------------
def test_every_registered_model_has_a_case() -> None:
    covered = {c.model for c in CASES}
    missing = sorted(set(MODELS) - covered)
    assert not missing, f"registered models without a protocol case: {missing}"
    unknown = sorted(covered - set(MODELS))
    assert not unknown, f"protocol cases of models that are not registered: {unknown}"


def test_every_model_that_takes_a_context_has_a_conditional_case() -> None:
    conditional = {c.model for c in CASES if c.context}
    assert conditional == {name for name in MODELS if takes_context(name)}


def test_case_likelihoods_match_the_registry(case: Case) -> None:
    model = case.build()
    assert type(model).likelihood == case.entry.likelihood == MODELS[case.model].likelihood


# -- what a model is --------------------------------------------------------------------------
def test_implements_the_protocol(case: Case) -> None:
    model = case.build()
    assert isinstance(model, Model)
    assert type(model).likelihood == case.entry.likelihood
    estimators = type(model).estimators
    assert isinstance(estimators, tuple)
    # a model offers estimators exactly when it has a likelihood
    assert bool(estimators) == (case.entry.likelihood != "none")
    assert set(estimators) <= set(ESTIMATORS)
    assert len(set(estimators)) == len(estimators)
    assert hasattr(model, "log_prob") == (case.entry.likelihood == "exact")


# -- shapes and gradients ---------------------------------------------------------------------
# a growing GAN's input and output layers of the other resolutions are idle at any one stage
# (tests/gan checks that each stage's own layers get gradients)
ALL_ACTIVE = [c for c in CASES if "curriculum" not in c.options]


@pytest.mark.parametrize("case", ALL_ACTIVE, ids=[c.name for c in ALL_ACTIVE])
def test_loss_is_a_finite_scalar_with_gradients(case: Case) -> None:
    model = randomize(case.build()).train()
    x = case.inputs(8)
    loss = model.loss(batch_of(x, case.contexts(8)))
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    no_grad = [n for n, p in trainable if p.grad is None]
    assert not no_grad, f"parameters the loss does not reach: {no_grad}"
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
    assert any(bool((p.grad != 0).any()) for _, p in trainable)


def test_estimate_of_every_method(case: Case) -> None:
    model = ready(case)
    x = case.inputs(5)
    c = case.contexts(5)
    for method in type(model).estimators:
        k = None if ESTIMATORS[method] == "exact" else 4
        est = model.estimate(x, c, method=method, k=k)
        assert est.values.shape == (5,), method
        assert est.kind == ESTIMATORS[method], method
        assert torch.isfinite(est.values).all(), method
    if not type(model).estimators:  # no likelihood: estimate says so, in one line
        with pytest.raises(ValueError, match="no likelihood"):
            model.estimate(x, c)
        return
    default = model.estimate(x, c)
    assert default.kind == ESTIMATORS[type(model).estimators[0]]


def test_sample_shapes(case: Case) -> None:
    model = ready(case)
    if case.context:
        c = case.contexts(3)
        assert model.sample(4, c).shape == (3, 4, *case.shape)
        assert model.sample(1, c[:1]).shape == (1, 1, *case.shape)
    else:
        assert model.sample(4).shape == (4, *case.shape)
        assert model.sample(1).shape == (1, *case.shape)
    s = model.sample(4, case.contexts(2))
    assert s.dtype == torch.float64 and torch.isfinite(s).all()
    assert not s.requires_grad


def test_extra_log_after_a_loss(case: Case) -> None:
    model = case.build().train()
    model.loss(batch_of(case.inputs(4), case.contexts(4))).backward()
    log = model.extra_log()
    assert isinstance(log, dict)
    for name, value in log.items():
        assert isinstance(name, str)
        # PEP 484: an int is acceptable where a float is expected (e.g. function evaluations)
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (name, value)
        assert math.isfinite(value), (name, value)


# -- consistency between estimate, log_prob and sample ----------------------------------------
EXACT = [c for c in CASES if c.entry.likelihood == "exact"]
BOUND = [c for c in CASES if c.entry.likelihood == "bound"]


@pytest.mark.parametrize("case", EXACT, ids=[c.name for c in EXACT])
def test_exact_estimate_is_log_prob(case: Case) -> None:
    model = ready(case)
    x, c = case.inputs(7), case.contexts(7)
    est = model.estimate(x, c)
    with torch.no_grad():
        log_p = model.log_prob(x, c)
    assert est.kind == "exact" and est.k is None
    torch.testing.assert_close(est.values, log_p, atol=1e-10, rtol=0)
    # the density is differentiable where it is exact
    assert model.log_prob(x, c).requires_grad


@pytest.mark.parametrize("case", EXACT, ids=[c.name for c in EXACT])
def test_sample_and_log_prob_agrees_with_estimate(case: Case) -> None:
    # every model with an exact density draws samples with their log-density in one pass
    model = ready(case)
    c = case.contexts(2)
    with torch.no_grad():
        s, log_p = model.sample_and_log_prob(5, c)
    lead = (5,) if c is None else (2, 5)
    assert s.shape == (*lead, *case.shape) and log_p.shape == lead
    flat = s.reshape(-1, *case.shape)
    cc = None if c is None else c.repeat_interleave(5, dim=0)
    est = model.estimate(flat, cc)
    # ffjord integrates with fixed-step RK4 (4 steps) both ways: its discretisation error (~2e-6
    # for the default tanh field, whose Jacobian at initialisation is far from 0)
    atol = 1e-5 if case.model == "ffjord" else 1e-6
    torch.testing.assert_close(est.values, log_p.reshape(-1), atol=atol, rtol=0)


@pytest.mark.parametrize("case", BOUND, ids=[c.name for c in BOUND])
def test_elbo_is_below_iwae_at_larger_k(case: Case) -> None:
    model = ready(case)
    assert {"elbo", "iwae"} <= set(type(model).estimators)
    x = case.inputs(300, seed=3)
    torch.manual_seed(11)
    elbo = model.estimate(x, method="elbo", k=8)
    iwae = model.estimate(x, method="iwae", k=64)
    assert elbo.kind == iwae.kind == "bound"
    # E[elbo] <= L_64 for every example: the paired mean difference may exceed 0 only by
    # Monte Carlo noise, measured by its own standard error
    d = (elbo.values - iwae.values).double()
    se = float(d.std() / math.sqrt(d.numel()))
    assert float(d.mean()) <= 3 * se, (float(d.mean()), se)
    assert float(d.mean()) < 0  # on a randomly initialised VAE the gap is far from 0


def _spread(s: Tensor) -> float:
    s = s.reshape(s.shape[0], -1)
    return float((s - s.mean(0)).pow(2).sum(1).mean().sqrt())


def test_lower_temperature_gives_smaller_spread(case: Case) -> None:
    model = ready(case)
    c = case.contexts(1)
    n = 400
    try:
        torch.manual_seed(5)
        cold = model.sample(n, c, temperature=0.5)
    except ValueError as err:
        assert "temperature" in str(err)
        return
    torch.manual_seed(5)
    warm = model.sample(n, c, temperature=1.0)
    if c is not None:
        cold, warm = cold[0], warm[0]
    assert cold.shape == warm.shape == (n, *case.shape)
    if case.tempered:  # (a Bernoulli decoder's own noise would dominate the spread)
        assert _spread(cold) < _spread(warm)


def test_temperature_is_validated(case: Case) -> None:
    model = case.build().eval()
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            model.sample(3, case.contexts(1), temperature=bad)


# -- save and load ----------------------------------------------------------------------------
def test_state_dict_round_trip(case: Case) -> None:
    model = randomize(case.build()).train()
    x, c = case.inputs(6), case.contexts(6)
    model.loss(batch_of(x, c))  # data-dependent initialisation (ActNorm) happens here
    fresh = case.build(seed=99)
    fresh.load_state_dict(model.state_dict())
    assert_bitwise_equal(params_of(fresh), params_of(model))
    x2 = case.inputs(6, seed=4)
    losses = []
    for m in (model, fresh):
        torch.manual_seed(3)
        losses.append(m.train().loss(batch_of(x2, c)).detach())
    assert torch.equal(losses[0], losses[1])
    values = [evaluation(m.eval(), x2, c) for m in (model, fresh)]
    assert torch.equal(values[0], values[1])


def test_library_format_round_trip(case: Case, tmp_path: Path) -> None:
    model = randomize(case.build()).train()
    x, c = case.inputs(6), case.contexts(6)
    model.loss(batch_of(x, c))
    model.eval()
    save_model(tmp_path, model, case.config)
    loaded = load_model(tmp_path, build_model)
    assert type(loaded) is type(model) and not loaded.training
    assert_bitwise_equal(params_of(loaded), params_of(model))
    values = [evaluation(m, x, c) for m in (model, loaded)]
    assert torch.equal(values[0], values[1])


# -- exact resume -----------------------------------------------------------------------------
class _InterruptError(Exception):
    pass


def _noise(x: Tensor, generator: torch.Generator) -> Tensor:
    """A stand-in for dequantization: noise from the trainer's generator (binary data are
    kept binary: their batches are permuted but not perturbed)."""
    if bool(((x == 0) | (x == 1)).all()):
        return x
    return x + 0.01 * torch.rand(x.shape, generator=generator, dtype=x.dtype)


def _interrupting(after_calls: int):  # noqa: ANN202 - a BatchTransform
    calls = {"n": 0}

    def transform(x: Tensor, generator: torch.Generator) -> Tensor:
        calls["n"] += 1
        if calls["n"] > after_calls:
            raise _InterruptError
        return _noise(x, generator)

    return transform


def test_resume_is_bitwise_exact(case: Case, tmp_path: Path) -> None:
    cfg = TrainConfig(
        steps=5, batch_size=8, lr=0.01, seed=3, eval_every=2, checkpoint_every=2, log_every=1
    )
    x, c = case.inputs(20, seed=6), case.contexts(20, seed=7)
    val = batch_of(case.inputs(8, seed=8), case.contexts(8, seed=9))
    train = batch_of(x, c)

    ref = case.build()
    fit(ref, train, val, cfg, tmp_path / "ref", batch_transform=_noise, progress=False,
        model_config=case.config)  # fmt: skip

    run = tmp_path / "cut"
    with pytest.raises(_InterruptError):
        fit(case.build(), train, val, cfg, run, batch_transform=_interrupting(3), progress=False,
            model_config=case.config)  # fmt: skip
    assert load_latest_checkpoint(run)[0] == 2

    torch.manual_seed(123)  # the RNG state must come from the checkpoint, not from here
    model = case.build(seed=77)
    out = resume(run, model, train, val, batch_transform=_noise, progress=False)
    assert out["steps"] == 5
    assert_bitwise_equal(params_of(model), params_of(ref))


# -- bad input --------------------------------------------------------------------------------
def test_unknown_and_unoffered_methods_are_refused(case: Case) -> None:
    model = case.build().eval()
    x, c = case.inputs(3), case.contexts(3)
    with pytest.raises(ValueError, match="method"):
        model.estimate(x, c, method="nonsense")
    for method in (m for m in ESTIMATORS if m not in type(model).estimators):
        with pytest.raises(ValueError, match="method"):
            model.estimate(x, c, method=method)


def test_wrong_shapes_are_refused(case: Case) -> None:
    model = case.build().eval()
    x, c = case.inputs(3), case.contexts(3)
    wrong = [
        x[..., :-1],  # one value short in the last dimension
        x.reshape(3, -1)[:, None],  # an extra dimension
        x[0],  # no batch dimension
    ]
    for bad in wrong:
        with pytest.raises((ValueError, TypeError)):
            model.estimate(bad, c)
        with pytest.raises((ValueError, TypeError)):
            model.loss(batch_of(bad, c))


def test_nan_input_is_refused(case: Case) -> None:
    model = case.build().eval()
    x, c = case.inputs(3), case.contexts(3)
    x[1].view(-1)[0] = float("nan")
    with pytest.raises(ValueError):
        model.estimate(x, c)
    with pytest.raises(ValueError):
        model.train().loss(batch_of(x, c))


def test_context_is_checked(case: Case) -> None:
    model = case.build().eval()
    x = case.inputs(3)

    def use(c: Tensor | None) -> object:
        if type(model).estimators:
            return model.estimate(x, c)
        return model.loss(x if c is None else (x, c))

    if case.context:
        with pytest.raises(ValueError, match="context"):
            use(None)
        with pytest.raises(ValueError, match="context"):
            model.sample(2, None)
        with pytest.raises(ValueError, match="context"):
            use(torch.randn(3, case.context + 1))
        with pytest.raises(ValueError, match="context"):
            use(torch.randn(2, case.context))
    elif type(model).estimators:
        with pytest.raises(ValueError, match="context"):
            model.estimate(x, torch.randn(3, 2))
        with pytest.raises(ValueError, match="context"):
            model.sample(2, torch.randn(3, 2))
