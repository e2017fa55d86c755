"""The VAE model: a probabilistic-PCA oracle, objectives, warm-up, builders, save/load, errors."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import tractable as tr
from tractable.estimators import LinearGaussian
from tractable.vae import VAE, GaussianDecoder, GaussianEncoder, build_vae

PPCAVAE = Callable[..., VAE]


# -- the oracle -------------------------------------------------------------------------------
@pytest.mark.parametrize("analytic_kl", [True, False])
def test_exact_posterior_makes_every_bound_tight(
    ppca: LinearGaussian, ppca_vae: PPCAVAE, analytic_kl: bool
) -> None:
    vae = ppca_vae(ppca, analytic_kl=analytic_kl)
    x = ppca.sample(10)
    log_p = ppca.log_marginal(x)
    if analytic_kl:
        # E_q[log p(x|z)] - KL: tight in expectation, but the first term still varies with z
        with torch.no_grad():
            draws = torch.stack([vae.elbo(x) for _ in range(200)])
        assert ((draws.mean(0) - log_p).abs() < 4 * draws.std(0) / math.sqrt(200)).all()
    else:
        # log p(x, z) - log q(z | x) is the same number at every z: zero variance
        torch.testing.assert_close(vae.elbo(x, k=3).detach(), log_p, rtol=0, atol=1e-9)
    torch.testing.assert_close(vae.iwae(x, k=7).detach(), log_p, rtol=0, atol=1e-9)
    torch.testing.assert_close(
        vae.estimate(x, method="importance", k=10).values, log_p, rtol=0, atol=1e-9
    )
    est = vae.estimate(x, method="importance", k=20)
    torch.testing.assert_close(est.ess, torch.full((10,), 20.0))
    for method in ("iwae", "elbo"):
        torch.testing.assert_close(
            vae.estimate(x, method=method, k=5).values, log_p, rtol=0, atol=1e-9
        )


def test_elbo_matches_the_analytic_elbo_of_a_wrong_encoder(
    ppca: LinearGaussian, ppca_vae: PPCAVAE
) -> None:
    vae = ppca_vae(ppca, shift=0.4)
    x = ppca.sample(8)
    loc, ls, _ = vae.encoder.gaussian(x)
    analytic = ppca.gaussian_elbo(x, loc.detach(), torch.diag_embed(ls.detach().exp() ** 2))
    with torch.no_grad():
        draws = torch.stack([vae.elbo(x, k=1) for _ in range(400)])
    se = draws.std(0) / math.sqrt(400)
    assert ((draws.mean(0) - analytic).abs() < 4 * se).all()
    assert (analytic < ppca.log_marginal(x) - 0.05).all()


def test_bounds_are_ordered_in_k(ppca: LinearGaussian, ppca_vae: PPCAVAE) -> None:
    vae = ppca_vae(ppca, shift=0.5)
    x = ppca.sample(10)
    log_p = float(ppca.log_marginal(x).mean())
    chain = []
    for k in (1, 10, 100):
        est = vae.estimate(x, method="iwae", k=k, repeats=50)
        chain.append((est.mean, est.mc_se))
    chain.append((log_p, 0.0))
    for (lo, se_lo), (hi, se_hi) in zip(chain[:-1], chain[1:], strict=True):
        assert hi - lo > 4 * math.hypot(se_lo, se_hi), chain


def test_importance_sampling_converges_to_log_p(ppca: LinearGaussian, ppca_vae: PPCAVAE) -> None:
    vae = ppca_vae(ppca, shift=0.3)
    x = ppca.sample(10)
    est = vae.estimate(x, method="importance", k=2000)
    assert est.kind == "estimate"
    z = (est.values - ppca.log_marginal(x)) / est.per_example_se
    assert z.abs().max() < 5


def test_analytic_and_monte_carlo_kl_agree(ppca: LinearGaussian, ppca_vae: PPCAVAE) -> None:
    # (the analytic KL is not always the lower-variance choice: near the posterior the terms of
    # log w cancel, Roeder et al. 2017; here we only check both estimate the same bound)
    x = ppca.sample(6)
    analytic, mc = ppca_vae(ppca, 0.4, True), ppca_vae(ppca, 0.4, False)
    assert analytic.analytic_kl and not mc.analytic_kl
    with torch.no_grad():
        a = torch.stack([analytic.elbo(x) for _ in range(200)])
        m = torch.stack([mc.elbo(x) for _ in range(200)])
    se = torch.sqrt(a.var(0) / 200 + m.var(0) / 200)
    assert ((a.mean(0) - m.mean(0)).abs() < 4 * se).all()


def test_iwae_with_one_sample_is_the_monte_carlo_elbo(
    ppca: LinearGaussian, ppca_vae: PPCAVAE
) -> None:
    x = ppca.sample(4)
    vae = ppca_vae(ppca, 0.3, analytic_kl=False)
    torch.manual_seed(5)
    a = vae.iwae(x, k=1)
    torch.manual_seed(5)
    b = vae.elbo(x, k=1)
    torch.testing.assert_close(a, b)


# -- training state -----------------------------------------------------------------------------
def binary(n: int, d: int) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, d), 0.3))


def test_warmup_schedule_counts_training_steps() -> None:
    model = build_vae(6, latent=2, hidden=(4,), warmup=4)
    x = binary(3, 6)
    assert model.beta == 0.0
    loss = model.loss(x)  # beta = 0: the loss is the reconstruction term alone
    assert math.isclose(loss.item(), -model.extra_log()["reconstruction"], rel_tol=1e-12)
    assert model.beta == 0.25
    with torch.no_grad():
        model.loss(x)  # evaluation does not count
    model.eval()
    model.loss(x)
    model.train()
    assert int(model.step) == 1
    model.set_step(2)
    assert model.beta == 0.5
    model.set_step(40)
    assert model.beta == 1.0
    with pytest.raises(ValueError, match="beta: this model's beta follows the warm-up"):
        model.beta = 0.3
    # the step is saved and restored with the weights
    fresh = build_vae(**model.config)
    fresh.load_state_dict(model.state_dict())
    assert fresh.beta == 1.0


def test_beta_by_hand_weights_the_kl() -> None:
    model = build_vae(6, latent=2, hidden=(4,))
    model.beta = 0.5
    loss = model.loss(binary(4, 6))
    t = model.extra_log()
    assert t["beta"] == 0.5
    assert math.isclose(loss.item(), -(t["reconstruction"] - 0.5 * t["kl"]), rel_tol=1e-12)
    with pytest.raises(ValueError, match="beta"):
        model.beta = -1.0


def test_iwae_objective_uses_k_samples() -> None:
    model = build_vae(6, latent=2, hidden=(4,), objective="iwae", k=50)
    x = binary(8, 6)
    torch.manual_seed(1)
    loss = model.loss(x)
    torch.manual_seed(1)
    torch.testing.assert_close(loss, -model.iwae(x, k=50).mean())
    # on average over draws the 50-sample bound is above the ELBO
    with torch.no_grad():
        iw = torch.stack([model.iwae(x, k=50).mean() for _ in range(20)])
        el = torch.stack([model.elbo(x).mean() for _ in range(20)])
    assert iw.mean() > el.mean()


# -- builders ----------------------------------------------------------------------------------
def unit_data(decoder: str, shape: tuple[int, ...], n: int = 3) -> torch.Tensor:
    if decoder == "bernoulli":
        return torch.bernoulli(torch.full((n, *shape), 0.4))
    if decoder == "gaussian":
        return torch.randn(n, *shape)
    return torch.randint(0, 256, (n, *shape)) / 255


@pytest.mark.parametrize("shape", [(6,), (1, 5, 4)])
@pytest.mark.parametrize("decoder", tr.vae.DECODERS)
@pytest.mark.parametrize("prior", tr.vae.PRIORS)
def test_every_builder_combination_trains(shape: tuple[int, ...], decoder: str, prior: str) -> None:
    posterior = "iaf" if prior == "flow" else "gaussian"  # covers the IAF path too
    model = build_vae(
        shape if len(shape) > 1 else shape[0],
        latent=2,
        hidden=(8,),
        prior=prior,
        decoder=decoder,
        posterior=posterior,
        objective="iwae" if prior in ("vamp", "flow") else "elbo",
        k=2,
        components=3,
        pseudo_inputs=4,
        flow_hidden=(8,),
        mixtures=2,
        levels=256,
    )
    x = unit_data(decoder, shape)
    loss = model.loss(x)
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert model.estimate(x, k=4).values.shape == (3,)
    assert model.sample(2).shape == (2, *shape)
    assert model.sample(2, temperature=0.5).shape == (2, *shape)
    assert model.decoder.mean(model.prior.sample(2)).shape == (2, *shape)
    assert model.reconstruct(x).shape == (3, *shape)
    assert model.analytic_kl == (prior == "normal")


def test_burda_architecture_is_one_call() -> None:
    model = build_vae(784)
    linears = [m for m in model.encoder.net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 200), (200, 200)]
    assert (model.encoder.loc.in_features, model.encoder.loc.out_features) == (200, 50)
    dec = [m for m in model.decoder.net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in dec] == [(50, 200), (200, 200), (200, 784)]
    assert isinstance(model.encoder.net[1], nn.Tanh)
    assert isinstance(model.prior, tr.distributions.StandardNormal)
    assert sum(p.numel() for p in model.parameters()) == 425284


def test_save_and_load_with_safetensors(tmp_path: Path) -> None:
    model = build_vae(
        6,
        latent=2,
        hidden=(8,),
        prior="vamp",
        posterior="iaf",
        pseudo_inputs=3,
        flow_hidden=(8,),
        warmup=10,
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.set_step(3)
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))
    (tmp_path / "config.json").write_text(json.dumps(model.config))
    fresh = build_vae(**json.loads((tmp_path / "config.json").read_text()))
    fresh.load_state_dict(load_file(str(path)))
    x = binary(4, 6)
    torch.manual_seed(2)
    a = model.estimate(x, method="importance", k=5).values
    torch.manual_seed(2)
    b = fresh.estimate(x, method="importance", k=5).values
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert fresh.beta == 0.3


@pytest.mark.slow
def test_k5000_on_784_dims_stays_in_bounded_chunks() -> None:
    model = build_vae(784)
    rows: list[int] = []
    model.decoder.net.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
    x = torch.bernoulli(torch.full((6, 784), 0.2))
    est = model.estimate(x, method="importance", k=5000)
    assert max(rows) <= 2**24 // 784 and sum(rows) == 30_000 and len(rows) >= 2
    assert est.values.shape == (6,) and bool(torch.isfinite(est.values).all())


# -- bad input ---------------------------------------------------------------------------------
def test_bad_input_is_rejected_with_the_argument_named() -> None:
    model = build_vae(6, latent=2, hidden=(4,))
    with pytest.raises(ValueError, match="x: the Bernoulli decoder needs binary data"):
        model.loss(torch.rand(3, 6))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 6\)"):
        model.estimate(binary(3, 7))
    nan = binary(3, 6)
    nan[0, 0] = math.nan
    with pytest.raises(ValueError, match="x: expected finite values"):
        model.elbo(nan)
    for fn in (model.elbo, model.iwae):
        with pytest.raises(ValueError, match="k: expected an int >= 1"):
            fn(binary(2, 6), k=0)
    with pytest.raises(ValueError, match="k: expected an int >= 1"):
        model.estimate(binary(2, 6), k=0)
    with pytest.raises(ValueError, match="method: VAE .* not 'exact'"):
        model.estimate(binary(2, 6), method="exact")
    with pytest.raises(ValueError, match="method: expected one of"):
        model.estimate(binary(2, 6), k=2, method="magic")
    with pytest.raises(ValueError, match="context"):
        model.estimate(binary(2, 6), context=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="repeats: expected an int >= 1"):
        model.estimate(binary(2, 6), method="iwae", repeats=0)
    with pytest.raises(ValueError, match="repeats: only method 'iwae'"):
        model.estimate(binary(2, 6), method="elbo", repeats=3)
    with pytest.raises(ValueError, match="context"):
        model.sample(2, context=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="temperature: expected a finite float > 0"):
        model.sample(2, temperature=0.0)
    with pytest.raises(TypeError, match="temperature: expected a float"):
        model.sample(2, temperature="cold")


def test_bad_images_and_configurations_are_rejected() -> None:
    model = build_vae((1, 8, 8), latent=2, hidden=(8,))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 1, 8, 8\)"):
        model.loss(torch.zeros(2, 64))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 1, 8, 8\)"):
        model.loss(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"shape: expected D or \(C, H, W\)"):
        build_vae((8, 8))
    with pytest.raises(ValueError, match="prior: expected one of"):
        build_vae(4, prior="laplace")
    with pytest.raises(ValueError, match="decoder: expected one of"):
        build_vae(4, decoder="poisson")
    with pytest.raises(ValueError, match="objective"):
        build_vae(4, objective="kl")
    enc = GaussianEncoder(4, latent=2, hidden=(4,))
    with pytest.raises(ValueError, match="decoder: expected latent=2"):
        VAE(enc, GaussianDecoder(4, latent=3, hidden=(4,)))
    with pytest.raises(ValueError, match="analytic_kl"):
        VAE(
            enc,
            GaussianDecoder(4, 2, hidden=(4,)),
            tr.distributions.MixtureOfGaussians(2),
            analytic_kl=True,
        )


def test_build_vae_k_follows_the_objective() -> None:
    # one decoder pass per example for the ELBO (Kingma and Welling), 5 draws for the IWAE
    assert build_vae(6, latent=2, hidden=(4,)).k == 1
    assert build_vae(6, latent=2, hidden=(4,), objective="iwae").k == 5
    model = build_vae(6, latent=2, hidden=(4,), objective="elbo", k=3)
    assert model.k == 3 and model.config["k"] == 3
