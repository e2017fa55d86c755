"""Flow.compile: the compiled density pass against the eager one (values and gradients in
float64), the checks staying outside the compiled graph, copies and state dicts."""

from __future__ import annotations

import copy

import pytest
import torch

import tractable as tr


class CountingBackend:
    r"""A torch.compile backend that records every graph it is given and runs it eagerly."""

    def __init__(self) -> None:
        self.graphs: list[torch.fx.GraphModule] = []

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list) -> object:
        self.graphs.append(gm)
        return gm.forward


def _grads(flow: tr.flows.Flow, x: torch.Tensor, c: torch.Tensor | None) -> list[torch.Tensor]:
    loss = -flow.log_prob(x, c).mean() if c is not None else flow.loss(x)
    return list(torch.autograd.grad(loss, list(flow.parameters())))


@pytest.mark.slow  # inductor generates and compiles C++: tens of seconds on a loaded machine
@pytest.mark.parametrize(
    "build",
    [
        lambda: tr.flows.MAF(3, transforms=1, hidden=(16, 16)),
        lambda: tr.flows.RealNVP(4, transforms=2, hidden=(16,)),
    ],
    ids=["maf", "realnvp"],
)
def test_inductor_matches_eager_values_and_gradients(build) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = build()
    with torch.no_grad():  # away from the zero-initialised output layers: every gradient > 0
        for p in eager.parameters():
            p.add_(0.1 * torch.randn_like(p))
    flow = build()
    flow.load_state_dict(eager.state_dict())
    flow.compile()  # inductor: generated code, not the eager kernels
    assert flow.is_compiled and not eager.is_compiled
    x = torch.randn(32, eager.features) * 2
    torch.testing.assert_close(flow.log_prob(x), eager.log_prob(x), atol=1e-10, rtol=1e-10)
    for g_c, g_e in zip(_grads(flow, x, None), _grads(eager, x, None), strict=True):
        assert g_e.abs().max() > 0
        torch.testing.assert_close(g_c, g_e, atol=1e-10, rtol=1e-10)


def test_compiled_conditional_maf_matches_eager_gradients() -> None:
    torch._dynamo.reset()
    torch.manual_seed(1)
    eager = tr.flows.MAF(3, context=2, transforms=2, hidden=(8,))
    flow = copy.deepcopy(eager).compile(backend="aot_eager")
    x, c = torch.randn(16, 3), torch.randn(16, 2)
    torch.testing.assert_close(flow.log_prob(x, c), eager.log_prob(x, c), atol=1e-12, rtol=0)
    for g_c, g_e in zip(_grads(flow, x, c), _grads(eager, x, c), strict=True):
        torch.testing.assert_close(g_c, g_e, atol=1e-12, rtol=1e-12)


def test_checks_run_outside_the_compiled_graph() -> None:
    torch._dynamo.reset()
    backend = CountingBackend()
    flow = tr.flows.MAF(3, context=2, transforms=2, hidden=(8,)).compile(backend=backend)
    x, c = torch.randn(8, 3), torch.randn(8, 2)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="x"):
        flow.log_prob(bad, c)
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(x, c[:5])
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(x)
    assert backend.graphs == []  # refused before the compiled region
    flow.log_prob(x, c)
    # one graph for the whole layer stack: no data-dependent check broke it
    assert len(backend.graphs) == 1
    # the base density's check of z stays in force after the compiled layers: finite input
    # that the layers overflow (x e^s + t at 1.7e308) is refused as in the eager flow
    with pytest.raises(ValueError, match="NaN"):
        flow.log_prob(torch.full((2, 3), 1.7e308), c[:2])


def test_state_dict_copies_and_uncompile() -> None:
    torch._dynamo.reset()
    torch.manual_seed(2)
    flow = tr.flows.MAF(2, transforms=2, hidden=(8,))
    keys = list(flow.state_dict())
    flow.compile(backend="aot_eager")
    assert list(flow.state_dict()) == keys
    x = torch.randn(6, 2)
    before = flow.log_prob(x)
    twin = copy.deepcopy(flow)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(0.1)
    # the copy runs its own parameters through the shared compiled function
    eager_twin = copy.deepcopy(twin).uncompile()
    assert twin.is_compiled and not eager_twin.is_compiled
    torch.testing.assert_close(twin.log_prob(x), eager_twin.log_prob(x), atol=1e-12, rtol=0)
    assert (twin.log_prob(x) - before).abs().max() > 1e-3
    torch.testing.assert_close(flow.log_prob(x), before, atol=0, rtol=0)
