"""The CNF transform against closed forms and autograd: linear ODEs, round trips, Jacobians,
adjoint against direct backpropagation, function counts and RNODE terms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.linalg import expm

from tractable.continuous import CNF, EXACT_MAX_FEATURES
from tractable.nn import ODEMLP

A3 = torch.tensor([[-0.3, 1.0, 0.2], [-0.8, 0.1, 0.0], [0.4, -0.2, 0.5]])
TIGHT = dict(solver="dopri5", atol=1e-10, rtol=1e-10)


def _kinetic_closed_form(A: torch.Tensor, x: torch.Tensor, T: float) -> float:
    r""":math:`\int_0^T \lVert A e^{tA} x \rVert^2 dt` by adaptive quadrature."""
    An, xn = A.numpy(), x.numpy()
    return quad(lambda t: float(np.sum((An @ expm(t * An) @ xn) ** 2)), 0.0, T, epsabs=1e-12)[0]


# -- linear dynamics: closed forms ------------------------------------------------------------
@pytest.mark.parametrize("adjoint", [True, False])
def test_linear_field_endpoint_and_log_determinant(linear_field, adjoint: bool) -> None:
    T = 0.7
    cnf = CNF(linear_field(A3), T=T, adjoint=adjoint, **TIGHT).eval()
    x = torch.randn(5, 3)
    z, ladj = cnf(x)
    expected = x @ torch.from_numpy(expm(T * A3.numpy())).T
    torch.testing.assert_close(z, expected, atol=1e-8, rtol=0)
    torch.testing.assert_close(
        ladj, torch.full((5,), T * float(torch.trace(A3))), atol=1e-8, rtol=0
    )
    x_back, ladj_inv = cnf.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-8, rtol=0)
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-8, rtol=0)


def test_adjoint_solve_of_grad_requiring_input_is_exact(linear_field) -> None:
    # Regression: inside the adjoint's forward solve (run under no_grad) a view of an input
    # that requires grad is not differentiable, which once zeroed the first divergence.
    cnf = CNF(linear_field(A3), adjoint=True, **TIGHT).eval()
    x = torch.randn(4, 3, requires_grad=True)
    for ladj in (cnf(x)[1], cnf.inverse(x)[1]):
        assert (ladj.abs() - float(torch.trace(A3))).abs().max() < 1e-12


@pytest.mark.parametrize("noise", ["gaussian", "rademacher"])
def test_hutchinson_ladj_of_linear_field_has_the_exact_law(linear_field, noise: str) -> None:
    # For f = A z the trace integrand is constant in time, so any Runge-Kutta step integrates
    # it exactly: each row's ladj is T eps^T A eps with one probe eps for the whole solve. Its
    # mean is T tr(A) and its variance T^2 Var(eps^T A eps). A probe redrawn at each of the 8
    # evaluations would shrink the variance to about 14 % of this.
    T, n = 0.5, 20000
    cnf = CNF(
        linear_field(A3),
        T=T,
        solver="rk4",
        steps=2,
        divergence="hutchinson",
        eval_divergence="hutchinson",
        noise=noise,
    ).eval()
    with torch.no_grad():
        _, ladj = cnf(torch.randn(n, 3))
    S = 0.5 * (A3 + A3.T)
    var = 2 * S.pow(2).sum()
    if noise == "rademacher":
        var = var - 2 * S.diagonal().pow(2).sum()
    assert (ladj.mean() - T * torch.trace(A3)).abs() < 4 * ladj.std() / math.sqrt(n)
    assert abs(ladj.var() / (T**2 * var) - 1) < 0.06


def test_rnode_terms_of_linear_field_match_closed_form(linear_field) -> None:
    T = 0.8
    cnf = CNF(
        linear_field(A3),
        T=T,
        divergence="exact",
        kinetic=1.0,
        jacobian=1.0,
        adjoint=False,
        **TIGHT,
    ).train()
    x = torch.randn(4, 3)
    cnf(x)
    kinetic = np.mean([_kinetic_closed_form(A3, x[i], T) for i in range(4)])
    assert abs(cnf.regularization["kinetic"].item() - kinetic) < 1e-7
    torch.testing.assert_close(cnf.regularization["jacobian"], T * A3.pow(2).sum())


def test_learned_time_span_gradient_matches_closed_form(linear_field) -> None:
    # d(T tr A)/d log T = T tr A, and dz/d log T = T A e^{TA} x.
    T = 0.6
    cnf = CNF(linear_field(A3), T=T, learn_T=True, adjoint=True, **TIGHT).eval()
    x = torch.randn(3, 3)
    z, ladj = cnf(x)
    (g,) = torch.autograd.grad(ladj.sum() + z.sum(), cnf.log_T)
    E = torch.from_numpy(expm(T * A3.numpy()))
    expected = 3 * T * torch.trace(A3) + (T * x @ (A3 @ E).T).sum()
    torch.testing.assert_close(g, expected, atol=1e-7, rtol=0)
    assert cnf.T.item() == pytest.approx(T)


# -- a nonlinear field: round trip and the Jacobian of the whole solve --------------------------
def test_round_trip_and_ladj_against_autograd_jacobian(random_field) -> None:
    cnf = CNF(random_field(2, hidden=(8,)), adjoint=False, **TIGHT).eval()
    x = torch.randn(6, 2, requires_grad=True)
    z, ladj = cnf(x)
    assert (z - x).abs().max() > 0.5 and ladj.abs().min() > 0.1  # far from the identity
    # rows are independent, so row i of every example's Jacobian is one backward pass
    J = torch.stack(
        [torch.autograd.grad(z[:, i].sum(), x, retain_graph=True)[0] for i in (0, 1)], 1
    )
    torch.testing.assert_close(ladj, torch.linalg.slogdet(J)[1], atol=1e-7, rtol=0)
    with torch.no_grad():
        x_back, ladj_inv = cnf.inverse(z)
    torch.testing.assert_close(x_back, x.detach(), atol=1e-7, rtol=0)
    torch.testing.assert_close(ladj_inv, -ladj.detach(), atol=1e-7, rtol=0)


def _grads(cnf: CNF, x: torch.Tensor, c: torch.Tensor | None, seed: int) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    inputs = [x] + ([c.clone().requires_grad_(True)] if c is not None else [])
    torch.manual_seed(seed)  # the same Hutchinson probe for both methods
    z, ladj = cnf(x, inputs[1] if c is not None else None)
    loss = (0.5 * z.pow(2).sum(1) - ladj).mean()
    loss = loss + sum(v for v in cnf.regularization.values())
    return list(torch.autograd.grad(loss, inputs + list(cnf.parameters())))


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_adjoint_and_direct_gradients_agree(random_field, divergence: str) -> None:
    net = random_field(2, context=1, hidden=(8,), scale=2.0)
    kw = dict(learn_T=True, divergence=divergence, kinetic=0.5, jacobian=0.5, **TIGHT)
    adj, direct = CNF(net, adjoint=True, **kw).train(), CNF(net, adjoint=False, **kw).train()
    direct.load_state_dict(adj.state_dict())
    x, c = torch.randn(4, 2), torch.randn(4, 1)
    g_adj, g_dir = _grads(adj, x, c, seed=3), _grads(direct, x, c, seed=3)
    assert len(g_adj) == len(g_dir) == 2 + len(list(adj.parameters()))
    for a, d in zip(g_adj, g_dir, strict=True):
        assert d.abs().max() > 0
        torch.testing.assert_close(a, d, atol=1e-6, rtol=1e-6)


# -- adjoint="auto": direct backpropagation while the stored activations fit the budget --------
@pytest.mark.parametrize("budget", [1e6, 1e-6])
def test_auto_takes_the_path_its_rule_names_with_the_same_gradients(random_field, budget) -> None:
    net = random_field(2, context=1, hidden=(8,), scale=2.0)
    kw = dict(learn_T=True, divergence="hutchinson", kinetic=0.5, jacobian=0.5, **TIGHT)
    ref = CNF(net, adjoint=True, **kw).train()
    auto = CNF(net, adjoint="auto", direct_budget_mb=budget, **kw).train()
    auto.load_state_dict(ref.state_dict())
    x, c = torch.randn(4, 2), torch.randn(4, 1)
    direct = auto.direct_memory(x, c) <= budget * 2**20
    assert direct == (budget == 1e6)
    g_ref, g_auto = _grads(ref, x, c, seed=5), _grads(auto, x, c, seed=5)
    # the adjoint's backward solve evaluates the field; direct backpropagation does not
    assert (auto.nfe()["backward"] == 0) == direct and ref.nfe()["backward"] > 0
    for a, b in zip(g_ref, g_auto, strict=True):
        assert b.abs().max() > 0
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-6)


def test_auto_rule_threshold_and_memory_estimate(random_field) -> None:
    cnf = CNF(random_field(2, hidden=(16, 16)), solver="rk4", steps=5, divergence="exact")
    cnf.train()
    x = torch.randn(32, 2)
    # before any solve: 4 evaluations per rk4 step; per row at least the two hidden layers'
    # float64 activations (pre- and post-tanh) of every evaluation
    first = cnf.direct_memory(x)
    assert first >= 32 * 20 * (2 * 32 * 8)
    cnf.direct_budget_mb = first / 2**20  # exactly at the budget: direct
    z, ladj = cnf(x)
    (z.sum() + ladj.sum()).backward()
    assert cnf.nfe() == {"forward": 20, "backward": 0}
    # after a training solve: twice its 20 evaluations, so the estimate doubles
    assert cnf.direct_memory(x) == pytest.approx(2 * first)
    cnf.reset_nfe()
    z, ladj = cnf(x)  # now over the budget: the adjoint
    (z.sum() + ladj.sum()).backward()
    assert cnf.nfe() == {"forward": 20, "backward": 20}
    # a wider field stores more per row
    wide = CNF(random_field(2, hidden=(64, 64)), solver="rk4", steps=5, divergence="exact")
    assert wide.train().direct_memory(x) > 3 * first
    # without gradients nothing is measured and nothing is solved backwards
    fresh = CNF(random_field(2, hidden=(8,)), solver="rk4", steps=2).train()
    with torch.no_grad():
        fresh(x)
    assert fresh._row_bytes == {} and fresh.nfe()["backward"] == 0


def test_training_tolerances_apply_in_training_mode_only(random_field) -> None:
    net = random_field(2, hidden=(16,), scale=2.0)
    loose = CNF(net, atol=1e-9, rtol=1e-9, train_atol=1e-3, train_rtol=1e-3)
    tight = CNF(net, atol=1e-9, rtol=1e-9)
    x = torch.randn(16, 2)
    counts = {}
    for name, cnf in (("loose", loose), ("tight", tight)):
        for mode in ("train", "eval"):
            getattr(cnf, mode)()
            cnf.reset_nfe()
            with torch.no_grad():
                z, ladj = cnf(x)
            counts[name, mode] = (cnf.nfe()["forward"], z, ladj)
    # evaluation solves to atol/rtol in both; training solves the loose one to 1e-3
    assert counts["loose", "eval"][0] == counts["tight", "eval"][0]
    assert counts["loose", "train"][0] < counts["tight", "train"][0] / 2
    torch.testing.assert_close(counts["loose", "eval"][2], counts["tight", "eval"][2])
    err = (counts["loose", "train"][2] - counts["tight", "train"][2]).abs().max()
    assert 1e-7 < err < 1e-2
    assert "train_atol=0.001" in repr(loose) and "train_atol" not in repr(tight)


# -- context ------------------------------------------------------------------------------------
def test_conditional_cnf_shapes_context_effect_and_round_trip(random_field) -> None:
    cnf = CNF(random_field(2, context=3, hidden=(8,)), solver="rk4", steps=8).eval()
    x, c = torch.randn(5, 2), torch.randn(5, 3)
    with torch.no_grad():
        z, ladj = cnf(x, c)
        z2, ladj2 = cnf(x, c + 1.0)
        x_back, _ = cnf.inverse(z, c)
    assert z.shape == (5, 2) and ladj.shape == (5,)
    assert (z - z2).abs().max() > 1e-2 and (ladj - ladj2).abs().max() > 1e-3
    # rk4 with 8 steps: the round trip is good to the method's error, not to rounding
    torch.testing.assert_close(x_back, x, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="context"):
        cnf(x, c[:3])


# -- function evaluations and RNODE terms ------------------------------------------------------
def test_nfe_counters(random_field) -> None:
    x = torch.randn(4, 2)
    for adjoint in (True, False):
        cnf = CNF(random_field(2, hidden=(8,)), solver="rk4", steps=3, adjoint=adjoint).train()
        z, ladj = cnf(x)
        assert cnf.nfe() == {"forward": 12, "backward": 0}
        (z.sum() + ladj.sum()).backward()
        # the adjoint re-solves backwards (12 more evaluations); direct backprop evaluates nothing
        assert cnf.nfe() == {"forward": 12, "backward": 12 if adjoint else 0}
        cnf.inverse(z.detach())
        assert cnf.nfe()["forward"] == 24
        cnf.reset_nfe()
        assert cnf.nfe() == {"forward": 0, "backward": 0}


def test_adaptive_solver_nfe_grows_with_tighter_tolerance(random_field) -> None:
    net = random_field(2, hidden=(8,))
    counts = []
    for tol in (1e-3, 1e-8):
        cnf = CNF(net, solver="dopri5", atol=tol, rtol=tol).eval()
        with torch.no_grad():
            cnf(torch.randn(4, 2))
        counts.append(cnf.nfe()["forward"])
    assert counts[0] < counts[1]


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_rnode_terms_zero_for_zero_field_and_positive_otherwise(
    zero_field, random_field, divergence: str
) -> None:
    kw = dict(solver="rk4", steps=4, divergence=divergence, kinetic=1.0, jacobian=2.0)
    x = torch.randn(5, 2)
    zero = CNF(zero_field(2), **kw).train()
    z, ladj = zero(x)
    assert set(zero.regularization) == {"kinetic", "jacobian"}
    assert all(v.item() == 0 for v in zero.regularization.values())
    torch.testing.assert_close(z, x)
    torch.testing.assert_close(ladj, torch.zeros(5))
    cnf = CNF(random_field(2, hidden=(8,)), **kw).train()
    cnf(x)
    assert all(v.item() > 0 for v in cnf.regularization.values())
    # in evaluation mode, and when the weights are 0, nothing is integrated
    cnf.eval()(x)
    assert cnf.regularization == {}
    only_kinetic = CNF(random_field(2, hidden=(8,)), solver="rk4", steps=4, kinetic=1.0).train()
    only_kinetic(x)
    assert set(only_kinetic.regularization) == {"kinetic"}


# -- modes, dtypes and failures -----------------------------------------------------------------
def test_estimator_follows_training_mode(random_field) -> None:
    cnf = CNF(random_field(2, hidden=(8,)), solver="rk4", steps=4, divergence="hutchinson")
    x = torch.randn(3, 2)
    with torch.no_grad():
        exact1, exact2 = cnf.eval()(x)[1], cnf(x)[1]
        noisy1, noisy2 = cnf.train()(x)[1], cnf(x)[1]
    torch.testing.assert_close(exact1, exact2)  # deterministic
    assert (noisy1 - noisy2).abs().max() > 1e-4  # a fresh probe per solve
    assert (noisy1 - exact1).abs().max() > 1e-4
    same = CNF(
        random_field(2, hidden=(8,)),
        solver="rk4",
        steps=4,
        divergence="hutchinson",
        eval_divergence=None,
    ).eval()
    assert same.eval_divergence == "hutchinson"


@pytest.mark.parametrize(
    ("features", "deterministic"), [(2, True), (EXACT_MAX_FEATURES + 1, False)]
)
def test_auto_divergence_is_exact_for_small_dimensions(
    random_field, features: int, deterministic: bool
) -> None:
    cnf = CNF(random_field(features, hidden=(8,)), solver="rk4", steps=4).train()
    assert cnf.divergence == "auto"
    x = torch.randn(3, features)
    with torch.no_grad():
        a, b, exact = cnf(x)[1], cnf(x)[1], cnf.eval()(x)[1]
    if deterministic:  # the exact trace: training and evaluation agree
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, exact)
    else:  # Hutchinson: a fresh probe per solve
        assert (a - b).abs().max() > 1e-4


def test_works_under_no_grad_and_in_float32(random_field) -> None:
    cnf = CNF(random_field(2, hidden=(8,)), solver="dopri5", atol=1e-5, rtol=1e-5).float().eval()
    x = torch.randn(4, 2, dtype=torch.float32)
    with torch.no_grad():
        z, ladj = cnf(x)
        x_back, _ = cnf.inverse(z)
    assert z.dtype == ladj.dtype == torch.float32 and z.grad_fn is None
    torch.testing.assert_close(x_back, x, atol=1e-3, rtol=0)


def test_inference_mode_gives_the_no_grad_result(random_field) -> None:
    # enable_grad cannot lift inference mode, which once silently made every divergence 0
    cnf = CNF(random_field(2, context=1, hidden=(8,)), solver="rk4", steps=4, learn_T=True)
    x, c = torch.randn(3, 2), torch.randn(3, 1)
    for mode in (cnf.eval, cnf.train):
        mode()
        torch.manual_seed(1)
        with torch.no_grad():
            expected = cnf(x, c)
        torch.manual_seed(1)
        with torch.inference_mode():
            got = cnf(x, c)
        assert expected[1].abs().min() > 1e-3
        torch.testing.assert_close(got, expected)


def test_non_finite_solve_raises() -> None:
    class Blowup(torch.nn.Module):
        def forward(self, t, z, context=None):
            return z * float("nan")

    cnf = CNF(Blowup(), solver="euler", steps=2).eval()
    with pytest.raises(RuntimeError, match="non-finite"):
        cnf(torch.randn(2, 2))
    # an adaptive solver rejects every NaN step until the step size underflows
    with pytest.raises(RuntimeError, match="underflow"):
        CNF(Blowup(), solver="dopri5").eval()(torch.randn(2, 2))


def test_dynamics_with_wrong_output_shape_raises() -> None:
    class FirstColumn(torch.nn.Module):
        def forward(self, t, z, context=None):
            return z[:, :1]

    cnf = CNF(FirstColumn(), solver="euler", steps=1).eval()
    with pytest.raises(ValueError, match="dynamics"):
        cnf(torch.randn(2, 2))


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"solver": "rk45"}, ValueError, "solver"),
        ({"solver": "rk4"}, ValueError, "steps"),
        ({"solver": "dopri5", "steps": 4}, ValueError, "steps"),
        ({"solver": "rk4", "steps": 0}, ValueError, "steps"),
        ({"T": 0.0}, ValueError, "T"),
        ({"T": "1"}, TypeError, "T"),
        ({"atol": -1e-5}, ValueError, "atol"),
        ({"rtol": float("nan")}, ValueError, "rtol"),
        ({"divergence": "trace"}, ValueError, "divergence"),
        ({"eval_divergence": "trace"}, ValueError, "eval_divergence"),
        ({"noise": "uniform"}, ValueError, "noise"),
        ({"kinetic": -1.0}, ValueError, "kinetic"),
        ({"jacobian": True}, TypeError, "jacobian"),
        ({"adjoint": 1}, TypeError, "adjoint"),
        ({"adjoint": "always"}, TypeError, "adjoint"),
        ({"direct_budget_mb": 0.0}, ValueError, "direct_budget_mb"),
        ({"train_atol": 0.0}, ValueError, "train_atol"),
        ({"train_rtol": "1e-3"}, TypeError, "train_rtol"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        CNF(ODEMLP(2, hidden=(4,)), **kwargs)
    with pytest.raises(TypeError, match="dynamics"):
        CNF(lambda t, z, c: z)
    with pytest.raises(ValueError, match="x"):
        CNF(ODEMLP(2, hidden=(4,)))(torch.zeros(2))
