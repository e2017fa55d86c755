"""GANs against closed forms: the gradient penalty, spectral normalisation, the optimal
discriminator of the minimax game and its value 2 JS - log 4, and the update plan."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tractable.gan import GAN, build_gan, gradient_penalty, spectral_normalize
from tractable.gan.losses import discriminator_loss, generator_loss
from tractable.train import TrainConfig, fit, load_latest_checkpoint


def test_gradient_penalty_of_a_linear_critic() -> None:
    # D(x) = w.x has gradient w everywhere: the penalty is (|w| - 1)^2 whatever the points
    w = torch.tensor([0.3, -1.2, 2.0])
    real, fake = torch.randn(16, 3), torch.randn(16, 3)
    expected = (w.norm() - 1) ** 2
    torch.testing.assert_close(gradient_penalty(lambda x: x @ w, real, fake), expected)


def test_gradient_penalty_matches_finite_differences() -> None:
    # a nonlinear critic: the penalty from central differences of D at the same interpolates
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))

    def critic(x: torch.Tensor) -> torch.Tensor:
        return net(x).squeeze(1)

    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    g = torch.Generator().manual_seed(3)
    penalty = gradient_penalty(critic, real, fake, generator=g)
    eps = torch.rand((6, 1), generator=torch.Generator().manual_seed(3))
    mixed = eps * real + (1 - eps) * fake
    h = 1e-6
    grads = torch.stack(
        [(critic(mixed + h * e) - critic(mixed - h * e)) / (2 * h) for e in torch.eye(2)], 1
    )
    expected = ((grads.norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(penalty.detach(), expected.detach(), atol=1e-8, rtol=1e-7)
    # and it is differentiable in the critic's parameters (all but the last bias, which does
    # not change the critic's gradient in x)
    penalty.backward()
    *used, last_bias = list(net.parameters())
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in used)
    assert last_bias.grad is None


def test_spectral_norm_makes_the_largest_singular_value_one() -> None:
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(12, 7))
    spectral_normalize(layer)
    layer.train()
    for _ in range(50):  # one power iteration per forward pass in training mode
        layer(torch.randn(4, 12))
    w = layer[0].weight.detach()  # the normalised weight W / sigma(W)
    assert float(torch.linalg.matrix_norm(w, ord=2)) == pytest.approx(1.0, abs=1e-4)
    original = layer[0].parametrizations.weight.original.detach()
    assert float(torch.linalg.matrix_norm(original, ord=2)) != pytest.approx(1.0, abs=1e-2)


def test_losses_at_known_scores() -> None:
    real, fake = torch.tensor([0.0]), torch.tensor([0.0])
    # D = 1/2 everywhere: the minimax discriminator loss is 2 log 2, the generator's -log 2
    assert float(discriminator_loss("minimax", real, fake)) == pytest.approx(2 * math.log(2))
    assert float(generator_loss("minimax", fake)) == pytest.approx(-math.log(2))
    assert float(generator_loss("nonsaturating", fake)) == pytest.approx(math.log(2))
    assert float(discriminator_loss("hinge", torch.tensor([0.5]), torch.tensor([-0.5]))) == 1.0
    assert float(discriminator_loss("wgan", torch.tensor([3.0]), torch.tensor([1.0]))) == -2.0


class _Shift(nn.Module):
    r"""A fixed generator: z -> z + shift (1-D), so p_G = N(shift, 1)."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.tensor([shift]), requires_grad=False)
        self.dummy = nn.Parameter(torch.zeros(1))  # the optimiser needs one trainable weight

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return z + self.shift + 0.0 * self.dummy


def _normal_log_pdf(x: torch.Tensor, mu: float) -> torch.Tensor:
    return -0.5 * (x - mu) ** 2 - 0.5 * math.log(2 * math.pi)


def test_trained_discriminator_is_the_optimal_one_and_the_game_value_is_2js_minus_log4() -> None:
    torch.manual_seed(0)
    shift = 1.5
    d = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))

    class Critic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = d

        def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
            return self.net(x).squeeze(1)

    gan = GAN(_Shift(shift), Critic(), (1,), 1, loss="minimax", lr_d=3e-3, ema=0.0)
    gan.updates = lambda step: [["discriminator"]]  # G stays fixed: only D learns
    data = torch.randn(20_000, 1)
    fit(gan, data, None, TrainConfig(steps=1500, batch_size=512, lr=3e-3), progress=False)
    # D*(x) = p_data / (p_data + p_G)
    grid = torch.linspace(-1.5, 3.0, 61).reshape(-1, 1)
    with torch.no_grad():
        trained = torch.sigmoid(gan.discriminator(grid))
    optimal = torch.sigmoid(_normal_log_pdf(grid, 0.0) - _normal_log_pdf(grid, shift)).squeeze(1)
    assert float((trained - optimal).abs().max()) < 0.03
    # V(D*, G) = E_data log D*(x) + E_G log(1 - D*(G(z))) = 2 JS(p_data, p_G) - log 4, with JS
    # by quadrature on a fine grid
    x = torch.linspace(-12, 14, 200_001, dtype=torch.float64)
    p, q = _normal_log_pdf(x, 0.0).exp(), _normal_log_pdf(x, shift).exp()
    m = 0.5 * (p + q)
    dx = float(x[1] - x[0])
    js = 0.5 * float((p * torch.log(p / m)).sum() * dx + (q * torch.log(q / m)).sum() * dx)
    with torch.no_grad():
        real = torch.randn(400_000, 1, generator=torch.Generator().manual_seed(1))
        fake = torch.randn(400_000, 1, generator=torch.Generator().manual_seed(2)) + shift
        value = -float(discriminator_loss("minimax", gan.discriminator(real),
                                          gan.discriminator(fake)))  # fmt: skip
    assert value == pytest.approx(2 * js - math.log(4), abs=0.01)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_n_critic_discriminator_steps_per_generator_step(tmp_path: Path, k: int) -> None:
    gan = build_gan((2,), noise=2, hidden=(8,), n_critic=k, ema=0.0)
    steps = 4 * (k + 1)
    cfg = TrainConfig(steps=steps, batch_size=16, checkpoint_every=steps)
    fit(gan, torch.randn(64, 2), None, cfg, tmp_path / "run", progress=False)
    opts = load_latest_checkpoint(tmp_path / "run")[2]["optimizers"]
    d_steps = int(opts["discriminator"]["state"][0]["step"])
    g_steps = int(opts["generator"]["state"][0]["step"])
    assert (d_steps, g_steps) == (4 * k, 4)


def test_simultaneous_updates_step_both_every_time(tmp_path: Path) -> None:
    gan = build_gan((2,), noise=2, hidden=(8,), simultaneous=True, ema=0.0)
    cfg = TrainConfig(steps=6, batch_size=16, checkpoint_every=6)
    fit(gan, torch.randn(64, 2), None, cfg, tmp_path / "run", progress=False)
    opts = load_latest_checkpoint(tmp_path / "run")[2]["optimizers"]
    assert {n: int(o["state"][0]["step"]) for n, o in opts.items()} == {
        "discriminator": 6,
        "generator": 6,
    }


def test_wgan_keeps_the_critic_clipped_and_ema_tracks_the_generator() -> None:
    gan = build_gan((2,), loss="wgan", noise=2, hidden=(8,), clip=0.05, ema=0.5)
    fit(gan, torch.randn(64, 2) * 3, None, TrainConfig(steps=24, batch_size=16, lr=0.5),
        progress=False)  # fmt: skip
    gan.loss(torch.randn(4, 2), "discriminator")
    largest = max(float(p.detach().abs().max()) for p in gan.discriminator.parameters())
    assert largest <= 0.05 + 1e-12
    # the average moved from its start towards the generator
    assert int(gan.ema_steps) == 24 // 6
    log = gan.extra_log()
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(log)


def test_the_protocol_says_a_gan_has_no_likelihood() -> None:
    gan = build_gan((2,), hidden=(8,))
    assert gan.likelihood == "none" and gan.estimators == ()
    assert not hasattr(gan, "log_prob")
    with pytest.raises(ValueError, match="no likelihood"):
        gan.estimate(torch.randn(3, 2))
    with pytest.raises(ValueError, match="offers no estimator, not 'iwae'"):
        gan.estimate(torch.randn(3, 2), method="iwae")
    assert gan.sample(0).shape == (0, 2)
    with pytest.raises(ValueError, match="temperature"):
        gan.sample(3, temperature=0.0)
    with pytest.raises(ValueError, match="loss: expected one of"):
        build_gan((2,), loss="lsgan")
    with pytest.raises(ValueError, match="part: expected one of"):
        gan.loss(torch.randn(3, 2), "critic")


def test_conditional_dcgan_shapes() -> None:
    gan = build_gan((1, 8, 8), context=10, noise=8, width=8, output="sigmoid")
    c = torch.eye(10)[:3]
    x = gan.sample(4, context=c)
    assert x.shape == (3, 4, 1, 8, 8) and bool(((x >= 0) & (x <= 1)).all())
    labels = torch.tensor([0, 1, 2, 3])
    loss = gan.loss((torch.rand(4, 1, 8, 8), labels), "discriminator")
    assert loss.shape == () and loss.requires_grad


def test_a_gan_run_is_evaluated_by_its_samples(tmp_path: Path) -> None:
    from tractable.runs import Run, evaluate_run, train_run

    m = train_run(
        model="gan", data="8gaussians", steps=12, batch_size=32, n=128, out=tmp_path / "run",
        options={"hidden": [8]}, data_options={"n_val": 200, "n_test": 200}, progress=False,
        plots=False, lr=5e-4,
    )  # fmt: skip
    assert m["likelihood"] == "none" and "test_nll" not in m
    last = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    # each player's own rate reaches the log: on 2-D data the continuous-data rate of
    # run_defaults, not the trainer's lr
    from tractable.gan.builders import CONTINUOUS_LR

    assert last["lr_discriminator"] == last["lr_generator"] == pytest.approx(CONTINUOUS_LR)
    run = Run.load(tmp_path / "run")
    with pytest.raises(ValueError, match="a GAN has no likelihood; compare it with sample"):
        run.estimate("test")
    result = evaluate_run(run, "modes,kl", n=200)
    assert result["modes"]["n_modes"] == 8
    # KL and JS against a KDE of the samples, and the report says so
    assert "KDE of 100 samples" in result["kl"]["model_density"]
    assert 0.0 <= result["kl"]["js"] <= np.log(2) + 1e-9


def test_progressive_growing_follows_the_curriculum() -> None:
    gan = build_gan((1, 8, 8), noise=4, width=4, output="sigmoid", curriculum=[4, 8], fade=2)
    seen = []
    for step in range(11):
        gan.updates(step)
        seen.append((int(gan.generator.stage), float(gan.generator.alpha)))
        assert int(gan.discriminator.stage) == seen[-1][0]
    # 2 x 2 until step 4, 4 x 4 fading in over two steps, then 8 x 8 from step 8 on
    assert seen[:4] == [(0, 1.0)] * 4
    assert seen[4:8] == [(1, 0.0), (1, 0.5), (1, 1.0), (1, 1.0)]
    assert seen[8:] == [(2, 0.0), (2, 0.5), (2, 1.0)]
    gan.updates(5)
    with torch.no_grad():
        low = gan.generator(torch.randn(3, 4))
    assert low.shape == (3, 1, 4, 4) and gan.sample(3).shape == (3, 1, 8, 8)
    # the discriminator reads real images at the same resolution: their 2 x 2 block means
    x = torch.rand(2, 1, 8, 8)
    gan.updates(0)
    torch.testing.assert_close(gan._at_resolution(x), torch.nn.functional.avg_pool2d(x, 4))
    with pytest.raises(ValueError, match="curriculum: expected 2 increasing steps"):
        build_gan((1, 8, 8), width=4, curriculum=[5])
    with pytest.raises(ValueError, match="curriculum: progressive growing is for images"):
        build_gan((2,), curriculum=[5])


def test_each_stage_trains_its_own_layers() -> None:
    gan = build_gan((1, 8, 8), noise=4, width=4, output="sigmoid", curriculum=[2, 4], fade=1)
    x = torch.rand(6, 1, 8, 8)
    for step, stage in ((0, 0), (3, 1), (5, 2)):
        gan.updates(step)
        for part, net, layers in (
            ("generator", gan.generator, gan.generator.to_image),
            ("discriminator", gan.discriminator, gan.discriminator.from_image),
        ):
            gan.zero_grad(set_to_none=True)
            gan.loss(x, part).backward()
            used = [p for p in layers[stage].parameters()]
            assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in used)
            idle = [p for i, m in enumerate(layers) if i != stage for p in m.parameters()]
            assert all(p.grad is None for p in idle), (part, stage)
            assert net.stage == stage


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 8, 8)])
def test_growing_networks_are_the_plain_ones_at_full_resolution(shape: tuple[int, ...]) -> None:
    # a curriculum compared at equal wall time must not buy or pay for a different network:
    # at full resolution the growing G and D compute exactly the plain DCGAN's function with
    # its parameters and FLOPs, and only the 1x1 heads of the lower resolutions are extra
    from torch.utils.flop_counter import FlopCounterMode

    from tractable.nn.adversarial import ConvDiscriminator, ConvGenerator
    from tractable.nn.growing import GrowingDiscriminator, GrowingGenerator

    def flops(net: nn.Module, x: torch.Tensor) -> int:
        with FlopCounterMode(display=False) as counter:
            net(x)
        return counter.get_total_flops()

    def size(modules: object) -> int:
        return sum(p.numel() for m in modules for p in m.parameters())

    z, x = torch.randn(5, 6), torch.rand(5, *shape)
    pairs = []
    for make_plain, make_growing, inputs in (
        (lambda: ConvGenerator(shape, 6, 8), lambda: GrowingGenerator(shape, 6, 8), z),
        (lambda: ConvDiscriminator(shape, 8), lambda: GrowingDiscriminator(shape, 8), x),
    ):
        torch.manual_seed(0)
        plain = make_plain()
        torch.manual_seed(0)  # the growing network builds the plain one first, then its heads
        growing = make_growing()
        pairs.append((plain, growing))
        torch.testing.assert_close(growing(inputs), plain(inputs), rtol=0, atol=0)
        assert flops(growing, inputs) == flops(plain, inputs) > 0
    (g_plain, g), (d_plain, d) = pairs
    c, side = shape[0], shape[1]
    assert g.stages == d.stages == 2
    # the heads: (channels + 1) x C weights each, channels of the plain network's maps
    g_heads, d_heads = list(g.to_image)[:-1], list(d.from_image)[:-1]
    assert size(g_heads) == (8 * 2 + 1) * c + (8 + 1) * c
    assert size(d_heads) == (c + 1) * 8 * 2 + (c + 1) * 8
    assert size([g]) == size([g_plain]) + size(g_heads)
    assert size([d]) == size([d_plain]) + size(d_heads)
    # the lower stages are cheaper than the full one, and their outputs are smaller
    full = flops(g, z), flops(d, x)
    for stage in (0, 1):
        g.stage.fill_(stage)
        d.stage.fill_(stage)
        low = x[..., : side // 2 ** (2 - stage), : side // 2 ** (2 - stage)]
        assert g(z).shape == low.shape
        assert flops(g, z) < full[0] and flops(d, low) < full[1]


def test_continuous_data_train_both_players_faster_where_the_user_gave_no_rate() -> None:
    from tractable.gan.builders import CONTINUOUS_LR, PAPER, run_defaults

    for loss in ("minimax", "nonsaturating", "hinge"):
        opts, _ = run_defaults("continuous", None, {"loss": loss})
        assert opts["lr_d"] == opts["lr_g"] == CONTINUOUS_LR
        built = build_gan((2,), hidden=(8,), **opts)
        assert {p["lr"] for p in built.parts().values()} == {CONTINUOUS_LR}
    assert run_defaults("continuous", None, {})[0]["lr_g"] == CONTINUOUS_LR  # the default loss
    # the user's rates win; the Wasserstein losses and images keep the papers' rates
    assert run_defaults("continuous", None, {"lr_d": 3e-4})[0]["lr_d"] == 3e-4
    for loss in ("wgan", "wgan-gp"):
        assert "lr_d" not in run_defaults("continuous", None, {"loss": loss})[0]
        assert PAPER[loss]["lr_d"] < CONTINUOUS_LR
    assert "lr_d" not in run_defaults("discrete", 256, {})[0]
