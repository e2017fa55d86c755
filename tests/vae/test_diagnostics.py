"""Posterior-collapse diagnostics: KL per latent dimension and active units on hand-built
VAEs with known answers, agreement with the model's own KL term, refusals where the
per-dimension KL is not defined, and the figures in `tractable eval` of a VAE run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from tractable.cli import main
from tractable.distributions import DiagNormal
from tractable.vae import (
    VAE,
    GaussianDecoder,
    GaussianEncoder,
    active_units,
    build_vae,
    kl_per_dimension,
    latent_diagnostics,
)

X = torch.tensor([[1.0, 0.3, -2.0], [2.0, -1.0, 0.5], [-1.0, 0.0, 4.0]])


def hand_built(prior: nn.Module | None = None) -> VAE:
    """A VAE on 3 features with 2 latents: unit 0 has mean x_0 + 0.5 and scale 0.5 whatever
    x; unit 1 ignores x, with mean 0 and log-variance 0, i.e. the prior N(0, 1) exactly."""
    enc = GaussianEncoder(3, 2, net=nn.Identity(), features=3)
    with torch.no_grad():
        enc.loc.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
        enc.loc.bias.copy_(torch.tensor([0.5, 0.0]))
        enc.log_scale.weight.zero_()
        enc.log_scale.bias.copy_(torch.tensor([math.log(0.5), 0.0]))
    dec = GaussianDecoder(3, 2, net=nn.Linear(2, 3), scale=1.0)
    return VAE(enc, dec, prior)


def test_an_ignored_unit_has_zero_kl_and_is_inactive_the_other_matches_by_hand() -> None:
    model = hand_built()
    kl = kl_per_dimension(model, X)
    # KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1 - 2 log s) / 2 with s = 0.5, m = x_0 + 0.5
    by_hand = [0.5 * (0.25 + m**2 - 1 - 2 * math.log(0.5)) for m in (1.5, 2.5, -0.5)]
    assert kl.shape == (2,)
    assert float(kl[0]) == pytest.approx(sum(by_hand) / 3, abs=1e-12)
    assert float(kl[1]) == 0.0
    count, activity = active_units(model, X)
    # Var of the means (1.5, 2.5, -0.5) with N - 1 = 2: (1/9 + 16/9 + 25/9) / 2 = 7/3
    assert count == 1
    assert float(activity[0]) == pytest.approx(7 / 3, abs=1e-12)
    assert float(activity[1]) == 0.0
    assert active_units(model, X, threshold=3.0)[0] == 0


def test_kl_with_a_diagonal_normal_prior_by_hand() -> None:
    prior = DiagNormal(2, loc=torch.tensor([1.0, 0.0]), scale=torch.tensor([2.0, 1.0]))
    kl = kl_per_dimension(hand_built(prior), X)
    # KL(N(m, s^2) || N(1, 4)) = log(2 / s) + (s^2 + (m - 1)^2) / 8 - 1/2
    by_hand = [math.log(2 / 0.5) + (0.25 + (m - 1) ** 2) / 8 - 0.5 for m in (1.5, 2.5, -0.5)]
    assert float(kl[0]) == pytest.approx(sum(by_hand) / 3, abs=1e-12)
    assert float(kl[1]) == 0.0  # N(0, 1) against the prior's N(0, 1)


@pytest.mark.parametrize("prior", ["standard", "diagonal"])
def test_the_sum_over_dimensions_is_the_models_kl_term(prior: str) -> None:
    torch.manual_seed(1)
    model = build_vae(6, latent=4, hidden=(16,), decoder="gaussian")
    if prior == "diagonal":
        model = VAE(model.encoder, model.decoder, DiagNormal(4, loc=0.3, scale=1.7))
    assert model.analytic_kl
    x = torch.randn(40, 6)
    model.train()
    model.loss(x)  # a training call records the batch mean of its closed-form KL term
    total = float(kl_per_dimension(model, x).sum())
    assert total == pytest.approx(model.extra_log()["kl"], rel=1e-12)
    assert model.training  # the diagnostics left the mode as it was


def test_per_dimension_kl_is_refused_where_it_is_not_defined() -> None:
    x = torch.randn(5, 6)
    for options, what in (
        ({"prior": "mog"}, "prior \\(MixtureOfGaussians\\) does not factorise"),
        ({"prior": "vamp", "pseudo_inputs": 3}, "prior \\(VampPrior\\) does not factorise"),
        ({"prior": "flow"}, "prior \\(Flow\\) does not factorise"),
        ({"posterior": "iaf"}, "posterior \\(FlowEncoder\\) is not a diagonal Gaussian"),
    ):
        model = build_vae(6, latent=2, hidden=(8,), decoder="gaussian", **options)
        with pytest.raises(ValueError, match=f"kl_per_dimension: not defined .*{what}"):
            kl_per_dimension(model, x)
        info = latent_diagnostics(model, x)
        assert "kl_per_dimension" not in info and info["latent"] == 2
    with pytest.raises(ValueError, match="context: a VAE is unconditional"):
        kl_per_dimension(hand_built(), X, context=torch.zeros(3, 1))
    with pytest.raises(ValueError, match="x: expected at least 2 rows"):
        active_units(hand_built(), X[:1])
    with pytest.raises(ValueError, match="threshold: expected a finite float >= 0"):
        active_units(hand_built(), X, threshold=-0.1)
    with pytest.raises(ValueError, match="x: expected shape \\(N, 3\\)"):
        kl_per_dimension(hand_built(), torch.zeros(4, 5))


def test_flow_posterior_activity_by_monte_carlo_is_unbiased() -> None:
    # a fresh one-layer IAF posterior is the identity (zero-initialised MADE; with more layers
    # the reversals between them permute the units), so E_q[z|x] is the Gaussian stage's mean
    # and the Monte Carlo activity should match the exact one. With k = 20 draws per row the
    # naive variance of the draws' means is too high by E_x[Var_q(z_j|x)] / k ~ 0.05 (posterior
    # sd ~ 1); subtracted, what remains is noise of sd ~ 0.004 (N = 2000 rows)
    torch.manual_seed(0)
    model = build_vae(6, latent=3, hidden=(16,), decoder="gaussian", posterior="iaf",
                      flow_transforms=1)  # fmt: skip
    x = 3 * torch.randn(2000, 6)
    with torch.no_grad():
        exact = model.encoder.gaussian(x)[0].var(0)
        naive = model.encoder.sample(x, 20).mean(0).var(0)
    assert bool((naive - exact > 0.03).all()), (naive, exact)
    _, mc = active_units(model, x, samples=20)
    assert torch.allclose(mc, exact, atol=0.015), (mc, exact)


def test_tractable_eval_reports_the_diagnostics_of_a_vae_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "vae"
    code = main(["train", "--model", "vae", "--data", "moons", "--steps", "20", "--out", str(out),
                 "-o", "latent=3", "-o", "hidden=[16]", "--train-size", "256", "--batch-size",
                 "64", "--json"])  # fmt: skip
    assert code == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--json", "--k", "5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["latent"] == 3 and 0 <= result["active_units"] <= 3
    assert len(result["kl_per_dimension"]) == 3 and len(result["activity"]) == 3
    assert all(v >= 0 for v in result["kl_per_dimension"])
    assert main(["eval", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"active units: {result['active_units']} of 3" in text
    assert "KL per latent dimension (nats): " in text
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["latent"] == 3 and len(stored["kl_per_dimension"]) == 3
    # a flow run has no such figures
    flow = tmp_path / "maf"
    assert main(["train", "--model", "maf", "--data", "moons", "--steps", "5", "--out",
                 str(flow), "-o", "hidden=[8]", "-o", "transforms=1", "--train-size", "128",
                 "--batch-size", "32", "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["eval", str(flow), "--json"]) == 0
    assert "active_units" not in json.loads(capsys.readouterr().out)
