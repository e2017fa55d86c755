"""The model protocol (tractable.protocol) on every flow builder: vector flows, image flows and
FFJORD; the builders' published signatures; the default number of image-flow levels."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import tractable as tr
from tractable.continuous import CNF, FFJORD
from tractable.flows.image import Glow, MultiscaleFlow, MultiscaleRealNVP
from tractable.protocol import Model

from ..transforms.registry import randomize
from .test_builders import BUILDERS, BUILDERS_2D
from .test_image import IMAGE_BUILDERS

# every builder, with small options: (builder, event shape, options)
MODELS = {
    **{key: (BUILDERS[key.split("-")[0]], (2,), options) for key, options in BUILDERS_2D.items()},
    "glow": (Glow, (1, 4, 4), dict(levels=2, depth=1, hidden=4)),
    "multiscale-realnvp": (
        MultiscaleRealNVP,
        (1, 4, 4),
        dict(levels=2, depth=1, hidden=4, blocks=1),
    ),
    "ffjord": (FFJORD, (2,), dict(hidden=(8,), solver="rk4", steps=4)),
}


def make(key: str, context: int = 0) -> torch.nn.Module:
    builder, shape, options = MODELS[key]
    first = {"shape": shape} if len(shape) == 3 else {"features": shape[0]}
    model = builder(**first, **options, context=context)
    c = torch.randn(32, context) if context else None
    model.log_prob(torch.randn(32, *shape), c)  # data-dependent layers see data first
    randomize(model, 0.1)
    return model.eval()


def test_every_builder_is_covered() -> None:
    names = {key.split("-")[0] for key in MODELS} | set(MODELS)
    assert set(BUILDERS) | set(IMAGE_BUILDERS) | {"ffjord"} <= names


@pytest.mark.parametrize("key", sorted(MODELS))
def test_protocol_members(key: str) -> None:
    model = make(key)
    shape = MODELS[key][1]
    assert isinstance(model, Model)
    assert model.likelihood == "exact" and model.estimators == ("exact",)
    x = torch.randn(5, *shape)
    est = model.estimate(x)
    assert isinstance(est, tr.estimators.Estimate)
    assert est.kind == "exact" and est.method == "exact" and est.k is None
    with torch.no_grad():
        log_p = model.log_prob(x)
    torch.testing.assert_close(est.values, log_p, atol=1e-10, rtol=0)
    torch.testing.assert_close(model.estimate(x, method="exact", batch_size=2).values, log_p)
    assert est.mean == pytest.approx(float(log_p.mean()))
    assert not est.values.requires_grad
    log = model.extra_log()
    assert isinstance(log, dict)
    assert all(
        isinstance(k, str) and isinstance(v, (int, float)) and math.isfinite(v)
        for k, v in log.items()
    )
    loss = model.loss(x)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert model.sample(3, temperature=0.5).shape == (3, *shape)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_estimate_rejects_other_estimators(key: str) -> None:
    model = make(key)
    x = torch.randn(2, *MODELS[key][1])
    with pytest.raises(ValueError, match=r"method: .* offers exact, not 'iwae'"):
        model.estimate(x, method="iwae")
    with pytest.raises(ValueError, match="method: expected one of"):
        model.estimate(x, method="bogus")
    with pytest.raises(ValueError, match="k: the exact log-density draws no samples"):
        model.estimate(x, k=10)
    with pytest.raises(ValueError, match="batch_size: expected an int >= 1"):
        model.estimate(x, batch_size=0)


@pytest.mark.parametrize("key", ["maf", "nsf-c", "glow", "ffjord"])
def test_conditional_estimate_matches_log_prob(key: str) -> None:
    model = make(key, context=2)
    shape = MODELS[key][1]
    x, c = torch.randn(5, *shape), torch.randn(5, 2)
    with torch.no_grad():
        log_p = model.log_prob(x, c)
    torch.testing.assert_close(model.estimate(x, c, batch_size=2).values, log_p)
    with pytest.raises(ValueError, match="context: expected a tensor with 5 rows"):
        model.estimate(x, c[:3])
    with pytest.raises(ValueError, match="context"):
        model.estimate(x)


def test_continuous_flow_reports_its_evaluations() -> None:
    model = make("ffjord").train()
    model.loss(torch.randn(4, 2)).backward()
    log = model.extra_log()
    cnfs = [m for m in model.modules() if isinstance(m, CNF)]
    # adjoint="auto" backpropagates this small model directly: no backward solve
    assert log["nfe_forward"] == 16 * len(cnfs) and log["nfe_backward"] == 0
    for cnf in cnfs:
        cnf.adjoint = True
    model.loss(torch.randn(4, 2)).backward()
    assert model.extra_log()["nfe_backward"] == 16 * len(cnfs)


def test_builders_publish_every_option() -> None:
    # the model registry reads the options a user may pass with -o NAME=VALUE from the signature
    builders = [*BUILDERS.values(), *IMAGE_BUILDERS.values(), FFJORD]
    for builder in builders:
        kinds = {p.kind for p in inspect.signature(builder).parameters.values()}
        assert not kinds & {inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL}
    shared = ["features", "context", "transforms", "hidden", "activation"]
    assert list(inspect.signature(tr.flows.MAF).parameters)[:5] == shared
    assert "embedding" in inspect.signature(tr.flows.NSF).parameters
    assert "activation" not in inspect.signature(tr.flows.Planar).parameters
    ffjord = inspect.signature(FFJORD).parameters
    cnf = list(inspect.signature(CNF).parameters)[1:]
    assert set(cnf) <= set(ffjord)
    # CNF's defaults, except that FFJORD trains at looser tolerances than it evaluates
    own = {"train_atol": 1e-3, "train_rtol": 1e-3}
    assert all(
        ffjord[name].default == own.get(name, inspect.signature(CNF).parameters[name].default)
        for name in cnf
    )


def test_builders_bind_their_arguments() -> None:
    flow = tr.flows.MAF(3, 0, 2, (8,), "tanh", seed=4)
    assert (
        len([m for m in flow.modules() if isinstance(m, tr.transforms.MaskedAutoregressive)]) == 2
    )
    with pytest.raises(TypeError, match="MAF: got an unexpected keyword argument 'bins'"):
        tr.flows.MAF(2, bins=3)
    with pytest.raises(TypeError, match="FFJORD: got an unexpected keyword argument 'solvr'"):
        FFJORD(2, solvr="rk4")
    flow = FFJORD(2, hidden=(4,), blocks=2, solver="euler", steps=3, kinetic=0.5, adjoint=False)
    cnfs = [m for m in flow.modules() if isinstance(m, CNF)]
    assert [(c.solver, c.steps, c.kinetic, c.adjoint) for c in cnfs] == [
        ("euler", 3, 0.5, False)
    ] * 2
    with pytest.raises(ValueError, match="steps: required for the fixed-step solver"):
        FFJORD(2, solver="rk4")


# -- image flows: the default number of levels -------------------------------------------------
@pytest.mark.parametrize(
    ("builder", "shape", "levels"),
    [
        (Glow, (1, 28, 28), 2),
        (Glow, (1, 8, 8), 3),
        (Glow, (3, 6, 10), 1),
        (Glow, (1, 5, 5), 1),
        (MultiscaleRealNVP, (1, 28, 28), 3),
        (MultiscaleRealNVP, (1, 8, 8), 3),
        (MultiscaleRealNVP, (1, 4, 2), 2),
    ],
)
def test_default_levels_are_the_most_that_fit(builder, shape: tuple, levels: int) -> None:
    if builder is Glow and shape == (1, 5, 5):
        # odd sides: not even one squeeze fits, and the error says so
        with pytest.raises(ValueError, match="levels: 1 levels squeeze the image 1 times"):
            builder(shape)
        return
    flow = builder(shape)  # every option at its default
    assert len(flow.stages) == levels
    x = torch.rand(2, *shape)
    log_p = flow.log_prob(x)
    assert log_p.shape == (2,) and torch.isfinite(log_p).all()
    assert flow.sample(1).shape == (1, *shape)


def test_explicit_levels_that_do_not_fit_are_an_error() -> None:
    with pytest.raises(ValueError, match="levels: 3 levels squeeze the image 3 times.*at most 2"):
        Glow((1, 28, 28), levels=3, depth=1, hidden=4)


# -- MultiscaleFlow is a Flow; checkpoints from before still load -------------------------------
def test_multiscale_flow_checkpoint_with_old_keys_loads() -> None:
    flow = make("glow")
    assert isinstance(flow, tr.flows.Flow) and isinstance(flow, MultiscaleFlow)
    assert flow.stages is flow.layers.stages and flow.priors is flow.layers.priors
    state = flow.state_dict()
    # the layout written before MultiscaleFlow became a Flow: stages and priors at the top
    old = {k.removeprefix("layers."): v for k, v in state.items()}
    assert any(k.startswith("stages.") for k in old) and any(k.startswith("priors.") for k in old)
    fresh = Glow((1, 4, 4), **MODELS["glow"][2]).eval()
    fresh.load_state_dict(old)
    x = torch.randn(3, 1, 4, 4)
    torch.testing.assert_close(fresh.log_prob(x), flow.log_prob(x), atol=0, rtol=0)
    assert list(fresh.state_dict()) == list(state)
