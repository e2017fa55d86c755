"""The FFJORD builder and ContinuousFlow: a normalized density, the RNODE loss, the trainer's
log, and CNF blocks mixed with discrete transforms."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from tractable.continuous import (
    CNF,
    FFJORD,
    ContinuousFlow,
    reset_nfe,
    rnode_penalty,
    total_nfe,
)
from tractable.flows import Flow
from tractable.transforms import Compose, Transform


class Scale(Transform):
    r"""A discrete elementwise scaling :math:`z = x e^{s}`, for mixing with CNF blocks."""

    def __init__(self, log_scale: Tensor) -> None:
        super().__init__()
        self.log_scale = torch.nn.Parameter(log_scale.clone())

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x * self.log_scale.exp(), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z * (-self.log_scale).exp(), -self.log_scale.sum().expand(z.shape[0])


def test_builder_structure_and_shapes() -> None:
    flow = FFJORD(3, context=2, hidden=(8,), blocks=2, solver="rk4", steps=2, kinetic=0.1)
    assert isinstance(flow, ContinuousFlow) and isinstance(flow, Flow)
    cnfs = [m for m in flow.modules() if isinstance(m, CNF)]
    assert len(cnfs) == 2 and cnfs[0].dynamics is not cnfs[1].dynamics
    assert all(c.kinetic == 0.1 and c.jacobian == 0.0 and c.adjoint == "auto" for c in cnfs)
    x, c = torch.randn(4, 3), torch.randn(4, 2)
    assert flow.log_prob(x, c).shape == (4,)
    assert flow.sample(5, c[:2]).shape == (2, 5, 3)
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(x)
    with pytest.raises(ValueError, match="blocks"):
        FFJORD(2, blocks=0)


def test_density_integrates_to_one(random_field, scale_params) -> None:
    # A random FFJORD far from the identity (its log-density differs from the base's by more
    # than 1 nat at some grid points); the Riemann sum over [-8, 8]^2 of a smooth density with
    # Gaussian tails is accurate far beyond the solver's 1e-6 tolerance.
    flow = FFJORD(2, hidden=(8, 8), activation="tanh", atol=1e-6, rtol=1e-6).eval()
    scale_params(flow, 3.0)
    g = torch.linspace(-8, 8, 121)
    X, Y = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
    with torch.no_grad():
        log_p = flow.log_prob(pts)
    h = float(g[1] - g[0])
    total = float(log_p.exp().sum()) * h * h
    assert abs(total - 1) < 0.01
    bulk = flow.base.log_prob(pts) > -6
    assert (log_p - flow.base.log_prob(pts))[bulk].abs().max() > 1.0


def test_sample_and_log_prob_agrees_with_log_prob() -> None:
    flow = FFJORD(2, context=1, hidden=(8,), atol=1e-8, rtol=1e-8).eval()
    c = torch.randn(2, 1)
    with torch.no_grad():
        x, log_p = flow.sample_and_log_prob(3, c)
        again = flow.log_prob(x.reshape(6, 2), c.repeat_interleave(3, 0))
    torch.testing.assert_close(log_p.reshape(6), again, atol=1e-6, rtol=0)


def test_loss_adds_weighted_rnode_terms_and_logs_nfe() -> None:
    flow = FFJORD(
        2,
        hidden=(8,),
        blocks=2,
        solver="rk4",
        steps=3,
        divergence="exact",
        kinetic=0.3,
        jacobian=0.7,
        adjoint=True,
    ).train()
    x = torch.randn(6, 2)
    loss = flow.loss(x)
    terms = [
        (c.kinetic, c.jacobian, c.regularization) for c in flow.modules() if isinstance(c, CNF)
    ]
    penalty = sum(k * r["kinetic"] + j * r["jacobian"] for k, j, r in terms)
    torch.testing.assert_close(rnode_penalty(flow), penalty)
    torch.testing.assert_close(loss, -flow.log_prob(x).mean() + penalty)
    assert penalty > 0
    flow.loss(x).backward()  # resets the counters first, then one step's worth
    log = flow.extra_log()
    assert log["nfe_forward"] == 2 * 12 and log["nfe_backward"] == 2 * 12
    # the exact divergence makes both passes identical
    kinetic = sum(float(r["kinetic"].detach()) for _, _, r in terms)
    assert log["kinetic"] == pytest.approx(kinetic, rel=1e-12)
    assert set(log) == {"nfe_forward", "nfe_backward", "kinetic", "jacobian"}
    assert total_nfe(flow) == {"forward": 24, "backward": 24}
    # a validation pass in between leaves the training step's numbers alone
    flow.eval()
    with torch.no_grad():
        val = flow.loss(x)
    assert flow.extra_log() == log
    torch.testing.assert_close(val, -flow.log_prob(x).mean())


def test_trains_at_looser_tolerances_than_it_evaluates() -> None:
    # FFJORD's one default that differs from CNF's; None trains at atol/rtol again
    def cnfs(flow: torch.nn.Module) -> list[CNF]:
        return [m for m in flow.modules() if isinstance(m, CNF)]

    flow = FFJORD(2, hidden=(8,), blocks=2)
    assert all((c.train_atol, c.train_rtol, c.atol, c.rtol) == (1e-3, 1e-3, 1e-5, 1e-5)
               for c in cnfs(flow))  # fmt: skip
    plain = FFJORD(2, hidden=(8,), train_atol=None, train_rtol=None)
    assert all(c.train_atol is None and c.train_rtol is None for c in cnfs(plain))
    torch.manual_seed(0)
    x = torch.randn(16, 2)
    a, b = FFJORD(2, hidden=(16,)), FFJORD(2, hidden=(16,), train_atol=None, train_rtol=None)
    b.load_state_dict(a.state_dict())
    nfe = {}
    for name, model in (("default", a), ("plain", b)):
        for mode in ("train", "eval"):
            getattr(model, mode)()
            with torch.no_grad():
                reset_nfe(model)
                model.log_prob(x)
            nfe[name, mode] = total_nfe(model)["forward"]
    assert nfe["default", "eval"] == nfe["plain", "eval"] == nfe["plain", "train"]
    assert nfe["default", "train"] < nfe["plain", "train"]


def test_loss_without_regularisation_is_the_nll() -> None:
    flow = FFJORD(2, hidden=(8,), solver="euler", steps=4, divergence="exact").train()
    x = torch.randn(5, 2)
    torch.testing.assert_close(flow.loss(x), -flow.log_prob(x).mean())
    assert set(flow.extra_log()) == {"nfe_forward", "nfe_backward"}
    assert rnode_penalty(flow).item() == 0.0


def _mixed(random_field, **kwargs) -> Compose:
    return Compose(
        CNF(random_field(2, hidden=(8,), scale=2.0), **kwargs),
        Scale(torch.tensor([0.3, -0.5])),
        CNF(random_field(2, hidden=(8,), scale=2.0), **kwargs),
    )


def test_cnf_blocks_mix_with_discrete_transforms(random_field) -> None:
    # dopri5's global error is a modest multiple (10-30x) of its local tolerance of 1e-9
    transform = _mixed(random_field, solver="dopri5", atol=1e-9, rtol=1e-9, adjoint=False)
    transform.eval()
    x = torch.randn(4, 2, requires_grad=True)
    z, ladj = transform(x)
    J = torch.stack(
        [torch.autograd.grad(z[:, i].sum(), x, retain_graph=True)[0] for i in (0, 1)], 1
    )
    torch.testing.assert_close(ladj, torch.linalg.slogdet(J)[1], atol=1e-6, rtol=0)
    with torch.no_grad():
        x_back, ladj_inv = transform.inverse(z)
    torch.testing.assert_close(x_back, x.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(ladj_inv, -ladj.detach(), atol=1e-6, rtol=0)


def test_mixed_flow_trains_through_the_adjoint(random_field) -> None:
    flow = ContinuousFlow(_mixed(random_field, solver="rk4", steps=4), event_shape=(2,)).train()
    flow.loss(torch.randn(8, 2)).backward()
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in flow.parameters())


def test_state_dict_round_trip_gives_identical_log_prob() -> None:
    kw = dict(hidden=(8,), learn_T=True, solver="rk4", steps=4)
    a, b = FFJORD(2, T=0.5, **kw).eval(), FFJORD(2, T=2.0, **kw).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(a.log_prob(x), b.log_prob(x), atol=0, rtol=0)
