"""Preprocessing: exact log-Jacobians, the bits/dim accounting, serialisation, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

import tractable as tr
from tractable.data import Preprocessor, fit_standardizer, nll_to_report


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- bits/dim accounting


def test_bpd_by_hand_two_pixels_four_levels() -> None:
    # density p(u) = 4 u1 u2 on [0, 1]^2 (a product of two Beta(2, 1)), two 2-pixel images
    # with 4 levels, dequantized at the bin centres (v = 0.5):
    #   x = (1, 3): u = (0.375, 0.875), p = 4 * 0.375 * 0.875 = 1.3125
    #   x = (0, 2): u = (0.125, 0.625), p = 4 * 0.125 * 0.625 = 0.3125
    # bits/dim of one image = (-log2 p + 2 log2 4) / 2 = -log2(p) / 2 + 2
    prep = Preprocessor((2,), "discrete", levels=4)
    x = torch.tensor([[1.0, 3.0], [0.0, 2.0]])
    u, ladj = prep.forward(x, noise=torch.full_like(x, 0.5))
    assert u.tolist() == [[0.375, 0.875], [0.125, 0.625]]
    assert ladj.tolist() == [0.0, 0.0]
    nll_model = -torch.log(4 * u[:, 0] * u[:, 1])
    report = nll_to_report(nll_model, ladj, prep)
    bpd_1 = -math.log2(1.3125) / 2 + 2
    bpd_2 = -math.log2(0.3125) / 2 + 2
    assert report["bpd"] == pytest.approx((bpd_1 + bpd_2) / 2, abs=1e-12)
    nll_1 = -math.log(1.3125) + 2 * math.log(4)
    nll_2 = -math.log(0.3125) + 2 * math.log(4)
    assert report["nll"] == pytest.approx((nll_1 + nll_2) / 2, abs=1e-12)
    # sample standard deviation of two values is |a - b| / sqrt(2), so the s.e. is |a - b| / 2
    assert report["nll_se"] == pytest.approx(abs(nll_1 - nll_2) / 2, abs=1e-12)
    assert report["bpd_se"] == pytest.approx(abs(bpd_1 - bpd_2) / 2, abs=1e-12)
    assert report["n"] == 2 and report["dims"] == 2 and report["levels"] == 4

    # the same density seen through the logit transform: the model's NLL in logit space is
    # -log p_U(u) + log|dy/du|, with dy/du = (1 - 2 lam) / (s (1 - s)) worked out by hand
    lam = 0.05
    logit_prep = Preprocessor((2,), "discrete", levels=4, logit=lam)
    y, ladj_logit = logit_prep.forward(x, noise=torch.full_like(x, 0.5))
    s = lam + (1 - 2 * lam) * u
    log_dy_du = torch.log((1 - 2 * lam) / (s * (1 - s))).sum(dim=1)
    assert torch.allclose(ladj_logit, log_dy_du, atol=1e-12)
    assert torch.allclose(y, torch.log(s / (1 - s)), atol=1e-12)
    report_logit = nll_to_report(nll_model + log_dy_du, ladj_logit, logit_prep)
    assert report_logit["bpd"] == pytest.approx(report["bpd"], abs=1e-12)
    assert report_logit["nll_model"] == pytest.approx(float((nll_model + log_dy_du).mean()))


@pytest.mark.parametrize("levels", [2, 4, 17, 256])
@pytest.mark.parametrize("logit", [None, 1e-6, 0.05])
def test_uniform_density_is_log2_levels_bits_per_dim(levels: int, logit: float | None) -> None:
    prep = Preprocessor((3, 2), "discrete", levels=levels, logit=logit)
    x = torch.randint(0, levels, (50, 3, 2)).double()
    y, ladj = prep.eval(x, _gen())
    # uniform on [0, 1]^D: -log p_U = 0, so the model-space NLL is exactly the log-Jacobian
    report = nll_to_report(ladj.clone(), ladj, prep)
    assert report["bpd"] == pytest.approx(math.log2(levels), abs=1e-12)
    assert report["nll"] == pytest.approx(6 * math.log(levels), abs=1e-10)
    assert report["nll_se"] == pytest.approx(0.0, abs=1e-10)


def test_histogram_model_makes_the_bound_tight() -> None:
    # p_U(u) = L P(floor(u L)) integrates to 1 and its dequantized NLL equals -log P(x) exactly
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    prep = Preprocessor((1,), "discrete", levels=4)
    x = torch.tensor([[0.0], [1.0], [3.0], [3.0], [2.0]])
    u, ladj = prep.eval(x, _gen(5))
    bins = torch.floor(u * 4).long().clamp(0, 3)
    nll_model = -torch.log(4 * probs[bins[:, 0]])
    report = nll_to_report(nll_model, ladj, prep)
    exact = float(-torch.log(probs[x[:, 0].long()]).mean())
    assert report["nll"] == pytest.approx(exact, abs=1e-12)
    assert report["bpd"] == pytest.approx(exact / math.log(2), abs=1e-12)


def test_logit_ladj_matches_autograd() -> None:
    lam, levels = 1e-6, 256
    prep = Preprocessor((5,), "discrete", levels=levels, logit=lam)
    # include the extreme bins, where the logit is steepest
    x = torch.tensor([[0.0, 255.0, 17.0, 128.0, 3.0]])
    for noise in (torch.rand(1, 5), torch.tensor([[1e-9, 1 - 1e-9, 0.5, 0.25, 0.999]])):
        _, ladj = prep.forward(x, noise)

        def f(v: torch.Tensor) -> torch.Tensor:
            return prep.forward(x, v.reshape(1, 5))[0].reshape(5)

        jac = torch.autograd.functional.jacobian(f, noise.reshape(5))
        # y depends on the noise through u = (x + v) / L
        expected = torch.linalg.slogdet(jac)[1] + 5 * math.log(levels)
        assert torch.isfinite(ladj).all()
        assert float(ladj[0]) == pytest.approx(float(expected), abs=1e-6)


def test_standardisation_gives_the_data_space_density() -> None:
    mean, std = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([2.0, 0.5, 3.0])
    prep = Preprocessor((3,), "continuous", mean=mean, std=std)
    x = mean + std * torch.randn(200, 3)
    y, ladj = prep.eval(x)
    assert torch.allclose(ladj, -torch.log(std).sum().expand(200))
    jac = torch.autograd.functional.jacobian(lambda v: prep.forward(v.reshape(1, 3))[0][0], x[0])
    assert float(torch.linalg.slogdet(jac)[1]) == pytest.approx(float(ladj[0]), abs=1e-12)
    # a standard normal in model space is N(mean, diag std^2) in data space
    nll_model = -torch.distributions.Normal(0.0, 1.0).log_prob(y).sum(dim=1)
    exact = -torch.distributions.Normal(mean, std).log_prob(x).sum(dim=1)
    report = nll_to_report(nll_model, ladj, prep)
    assert report["nll"] == pytest.approx(float(exact.mean()), abs=1e-10)
    assert report["bpd"] is None and report["bpd_se"] is None
    assert torch.allclose(prep.inverse(y), x, atol=1e-12)


def test_fit_standardizer_uses_training_statistics() -> None:
    x = torch.randn(100, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0]) + 7.0
    prep = fit_standardizer(x)
    y, _ = prep.eval(x)
    assert torch.allclose(y.mean(0), torch.zeros(4), atol=1e-12)
    assert torch.allclose(y.std(0, unbiased=False), torch.ones(4), atol=1e-12)
    with pytest.raises(ValueError, match="constant"):
        fit_standardizer(torch.cat([x, torch.ones(100, 1)], dim=1))


def test_binary_report_and_dynamic_binarization() -> None:
    prep = Preprocessor((4,), "binary", binarize="dynamic")
    p = torch.tensor([[0.0, 0.25, 0.75, 1.0]]).expand(20000, 4)
    y = prep.train_batch(p, _gen(1))
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(y.mean(0), p[0], atol=0.02)
    assert not torch.equal(y, prep.train_batch(p, _gen(2)))
    fixed = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    y_eval, ladj = prep.eval(fixed)  # already-binary data pass through unchanged
    assert torch.equal(y_eval, fixed) and ladj.tolist() == [0.0]
    report = nll_to_report(torch.tensor([2.0, 4.0]), torch.zeros(2), prep)
    assert report["nll"] == 3.0
    assert report["bpd"] == pytest.approx(3.0 / (4 * math.log(2)))


# ---------------------------------------------------------------- randomness, inverse, JSON


def test_eval_is_reproducible_and_train_batch_is_fresh() -> None:
    prep = Preprocessor((6,), "discrete", levels=17, logit=0.05)
    x = torch.randint(0, 17, (8, 6)).double()
    assert torch.equal(prep.eval(x, _gen(3))[0], prep.eval(x, _gen(3))[0])
    assert torch.equal(prep.eval(x)[0], prep.eval(x)[0])  # default: a generator seeded with 0
    assert not torch.equal(prep.eval(x, _gen(3))[0], prep.eval(x, _gen(4))[0])
    g = _gen(0)
    assert not torch.equal(prep.train_batch(x, g), prep.train_batch(x, g))
    state = torch.get_rng_state()
    prep.eval(x)
    assert torch.equal(state, torch.get_rng_state())  # eval never touches the global RNG


@pytest.mark.parametrize("logit", [None, 1e-6, 0.05])
def test_inverse_recovers_the_discrete_values(logit: float | None) -> None:
    prep = Preprocessor((1, 4, 4), "discrete", levels=256, logit=logit)
    x = torch.randint(0, 256, (10, 1, 4, 4)).double()
    x[0] = 0.0
    x[1] = 255.0
    y, _ = prep.eval(x, _gen())
    assert torch.equal(prep.inverse(y), x)
    u, _ = Preprocessor((1, 4, 4), "discrete", levels=256).eval(x, _gen())
    assert bool(((u >= 0) & (u < 1)).all())


@pytest.mark.parametrize(
    "prep",
    [
        Preprocessor((3,)),
        Preprocessor((2,), "continuous", mean=[1.0, 2.0], std=[0.5, 3.0]),
        Preprocessor((1, 2, 2), "discrete", levels=256, logit=1e-6),
        Preprocessor((4,), "binary", binarize="dynamic"),
        Preprocessor((4,), "binary"),
    ],
    ids=repr,
)
def test_to_dict_round_trip_through_json(prep: Preprocessor) -> None:
    again = Preprocessor.from_dict(json.loads(json.dumps(prep.to_dict())))
    assert again.to_dict() == prep.to_dict()
    x = torch.randint(0, 2, (5, *prep.shape)).double()
    y1, l1 = prep.eval(x, _gen(7))
    y2, l2 = again.eval(x, _gen(7))
    assert torch.equal(y1, y2) and torch.equal(l1, l2)


def test_from_dict_rejects_unknown_keys_and_versions() -> None:
    d = Preprocessor((2,)).to_dict()
    with pytest.raises(ValueError, match="unknown keys"):
        Preprocessor.from_dict({**d, "colour": "red"})
    with pytest.raises(ValueError, match="version"):
        Preprocessor.from_dict({**d, "version": 99})


# ---------------------------------------------------------------- bad input


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="kind"):
        Preprocessor((2,), "categorical")
    with pytest.raises(ValueError, match="levels"):
        Preprocessor((2,), "discrete")
    with pytest.raises(ValueError, match="logit"):
        Preprocessor((2,), "discrete", levels=4, logit=0.5)
    with pytest.raises(ValueError, match="logit"):
        Preprocessor((2,), "continuous", logit=0.05)
    with pytest.raises(ValueError, match="mean, std"):
        Preprocessor((2,), mean=[0.0, 0.0])
    with pytest.raises(ValueError, match="std"):
        Preprocessor((2,), mean=[0.0, 0.0], std=[1.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        Preprocessor((2,), mean=[0.0], std=[1.0])
    with pytest.raises(ValueError, match="binarize"):
        Preprocessor((2,), "discrete", levels=4, binarize="dynamic")
    with pytest.raises(ValueError, match="shape"):
        Preprocessor((0, 2))


def test_bad_batches_are_refused() -> None:
    prep = Preprocessor((2,), "discrete", levels=4)
    with pytest.raises(ValueError, match="integer values in 0..3"):
        prep.eval(torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="integer values in 0..3"):
        prep.train_batch(torch.tensor([[4.0, 1.0]]))
    with pytest.raises(ValueError, match=r"expected shape \(N, 2\)"):
        prep.eval(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="finite"):
        Preprocessor((2,)).eval(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="noise"):
        prep.forward(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"values in \{0, 1\}"):
        Preprocessor((2,), "binary").eval(torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"intensities in \[0, 1\]"):
        Preprocessor((2,), "binary", binarize="dynamic").train_batch(torch.tensor([[1.5, 0.0]]))
    with tr.validation(False):  # validation off: the range checks are skipped
        prep.eval(torch.tensor([[0.5, 1.0]]))


def test_nll_to_report_bad_input() -> None:
    prep = Preprocessor((2,), "discrete", levels=4)
    with pytest.raises(ValueError, match="ladj"):
        nll_to_report(torch.zeros(3), torch.zeros(2), prep)
    with pytest.raises(ValueError, match=r"nll_model: expected shape \(N,\)"):
        nll_to_report(torch.zeros(3, 1), torch.zeros(3), prep)
    with pytest.raises(TypeError, match="dataset"):
        nll_to_report(torch.zeros(3), torch.zeros(3), "mnist")
    with pytest.raises(ValueError, match="finite"):
        nll_to_report(torch.tensor([1.0, float("nan")]), torch.zeros(2), prep)


def test_discrete_data_on_the_grid_for_models_of_the_mass() -> None:
    # a VAE with a discretized decoder wants x / (L - 1), neither noise nor a Jacobian, and its
    # log-probability is already that of the discrete data: no D log L correction
    p = Preprocessor((3,), "discrete", levels=17, dequantize=False)
    x = torch.tensor([[0.0, 8.0, 16.0]])
    y, ladj = p.eval(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y, x / 16)
    assert float(ladj) == 0.0
    torch.testing.assert_close(p.train_batch(x), x / 16)
    torch.testing.assert_close(p.inverse(y + 0.01), x)
    log_p = torch.tensor([-5.0])
    torch.testing.assert_close(p.log_likelihood(log_p, ladj), log_p)
    assert nll_to_report(-log_p, ladj, p)["bpd"] == pytest.approx(5.0 / (3 * math.log(2)))
    assert Preprocessor.from_dict(p.to_dict()).dequantize is False
    # the same numbers dequantized: the bin volume L^-D comes off the density
    q = Preprocessor((3,), "discrete", levels=17)
    expected = log_p - 3 * math.log(17)
    torch.testing.assert_close(q.log_likelihood(log_p, torch.zeros(1)), expected)
    with pytest.raises(ValueError, match="logit: the logit transform needs dequantized data"):
        Preprocessor((3,), "discrete", levels=17, dequantize=False, logit=0.05)
    with pytest.raises(ValueError, match="dequantize: only discrete data"):
        Preprocessor((3,), "continuous", dequantize=False)
