"""Fuzzing every registered model (flows, multiscale and continuous flows, VAEs) through the
protocol: log_prob, estimate, loss and sample, on well-formed and malformed arguments."""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tractable.vae import build_vae

from ..protocol.cases import CASES, Case
from .helpers import RefusedError, attempt, call, float_args, fuzz, small_ints, tensors

ids = [c.name for c in CASES]


@functools.cache
def ready(name: str) -> torch.nn.Module:
    r"""The case's model after one training-mode loss (data-dependent initialisation), in
    evaluation mode; built once per session."""
    case = next(c for c in CASES if c.name == name)
    model = case.build()
    with torch.no_grad():
        x, c = case.inputs(8), case.contexts(8)
        model.loss(x if c is None else (x, c))
    return model.eval()


def contexts(case: Case, n: int) -> st.SearchStrategy:
    if not case.context:
        return st.sampled_from([None, None, None, torch.zeros(n, 2)])
    return st.one_of(
        st.just(torch.randn(n, case.context)),
        tensors((case.context,), rows=(n, n)),
        tensors((case.context,)),
    )


@pytest.mark.parametrize("case", CASES, ids=ids)
@fuzz(20)
@given(data=st.data())
def test_densities_and_estimates(case: Case, data: st.DataObject) -> None:
    model = ready(case.name)
    x = data.draw(tensors(case.shape, binary=case.data == "binary"), label="x")
    n = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() > 0 else 1
    context = data.draw(contexts(case, n), label="context")
    if case.entry.likelihood == "exact":
        log_p = attempt(model.log_prob, x, context, log_density=True)
        if log_p is not None:
            assert log_p.shape == (x.shape[0],)
    methods = [*type(model).estimators, None, "bogus", 3]
    method = data.draw(st.sampled_from(methods), label="method")
    k = data.draw(st.one_of(st.none(), small_ints(-1, 3)), label="k")
    with torch.no_grad():
        est = attempt(model.estimate, x, context, method=method, k=k, log_density=True)
        if est is not None:
            assert est.values.shape == (x.shape[0],)
            call(est.to_dict, log_density=True)
        if isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] > 0:
            batch = x if context is None else (x, context)
            loss = attempt(model.loss, batch, names=("x", "context", "batch"), finite=False)
            if loss is not None:
                # +inf only where some example has zero density (an extreme input); never NaN
                assert loss.shape == () and not bool(torch.isnan(loss))
                if bool((x.double().abs() < 1e30).all()):
                    assert bool(torch.isfinite(loss)), f"loss {loss} of a moderate batch"


@pytest.mark.parametrize("case", CASES, ids=ids)
@fuzz(10)
@given(data=st.data())
def test_sampling(case: Case, data: st.DataObject) -> None:
    model = ready(case.name)
    n = data.draw(small_ints(-1, 4), label="n")
    temperature = data.draw(st.one_of(st.just(1.0), float_args(-1.0, 2.0)), label="temperature")
    m = data.draw(st.integers(0, 3), label="context rows")
    context = data.draw(contexts(case, m), label="context")
    try:
        x = call(model.sample, n, context, temperature)
    except RefusedError:
        return
    lead = (n,) if not case.context else (context.shape[0], n)
    assert x.shape == (*lead, *case.shape)


@fuzz(60)
@given(
    shape=st.one_of(
        small_ints(-1, 6),
        st.lists(st.integers(-1, 5), min_size=0, max_size=4).map(tuple),
        st.sampled_from([(1, 4, 4), (2, 4, 4), "6", None, (3.0,)]),
    ),
    latent=small_ints(-1, 3),
    hidden=st.one_of(
        st.lists(st.integers(-1, 6), max_size=2).map(tuple), st.sampled_from([None, 4, "8"])
    ),
    decoder=st.sampled_from([None, "bernoulli", "gaussian", "logistic", "categorical", "x"]),
    prior=st.sampled_from(["normal", "mog", "vamp", "flow", "nope"]),
)
def test_build_vae(
    shape: object, latent: object, hidden: object, decoder: object, prior: object
) -> None:
    options = {"latent": latent, "hidden": hidden, "decoder": decoder, "prior": prior}
    options |= {"pseudo_inputs": 3, "flow_hidden": (4,), "components": 2, "levels": 4}
    model = attempt(build_vae, shape, **options)
    if model is not None:
        assert model.sample(2).shape == (2, *model.event_shape)


@fuzz(60)
@given(data=st.data())
def test_vae_bounds(data: st.DataObject) -> None:
    model = ready("vae")
    x = data.draw(tensors((6,), binary=True), label="x")
    k = data.draw(small_ints(-1, 3), label="k")
    beta = data.draw(st.one_of(st.just(1.0), float_args(-1.0, 3.0)), label="beta")
    fn = data.draw(st.sampled_from([model.elbo, model.iwae]), label="bound")
    with torch.no_grad():
        values = attempt(fn, x, k, beta)
    if values is not None:
        assert values.shape == (x.shape[0],)
    repeats = data.draw(small_ints(-1, 3), label="repeats")
    with torch.no_grad():
        est = attempt(model.estimate, torch.ones(2, 6), method="iwae", k=2, repeats=repeats)
    if est is not None:
        assert est.values.shape == (2,)


# -- what the fuzzing found, kept as plain regression tests -------------------------------------
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_found_a_huge_temperature_gives_an_error_not_nan(case: Case) -> None:
    model = ready(case.name)
    attempt(model.sample, 2, case.contexts(1), 1e308)  # finite samples or "temperature: ..."


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_found_float32_and_integer_batches_are_cast(case: Case) -> None:
    model = ready(case.name)
    x, c = case.inputs(3), case.contexts(3)
    for batch in (x.float(), x.round().long()):
        with torch.no_grad():
            loss = call(model.loss, batch if c is None else (batch, c.float()), finite=False)
        assert loss.dtype == torch.float64 and not bool(torch.isnan(loss))
