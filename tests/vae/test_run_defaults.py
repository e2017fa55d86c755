"""run_defaults: the VAE decoder follows the data, and the data follow the decoder."""

from __future__ import annotations

import pytest
import torch

from tractable.vae import (
    BernoulliDecoder,
    CategoricalDecoder,
    DiscretizedLogisticDecoder,
    DiscretizedLogisticMixtureDecoder,
    GaussianDecoder,
    build_vae,
    run_defaults,
)


@pytest.mark.parametrize(
    ("kind", "levels", "decoder", "data"),
    [
        ("binary", None, "bernoulli", {}),
        ("binary", 2, "bernoulli", {}),
        ("discrete", 256, "logistic", {"dequantize": False}),
        ("continuous", None, "gaussian", {}),
    ],
)
def test_the_default_decoder_follows_the_data(
    kind: str, levels: int | None, decoder: str, data: dict
) -> None:
    options = {"latent": 8, "hidden": [16]}
    model, data_options = run_defaults(kind, levels, options)
    assert model["decoder"] == decoder and data_options == data
    assert model["latent"] == 8 and model["hidden"] == [16]
    assert model.get("levels") == (levels if decoder == "logistic" else None)
    assert options == {"latent": 8, "hidden": [16]}  # the caller's dict is left alone
    assert run_defaults(kind, levels, {"decoder": None}) == (
        {"decoder": decoder, **({"levels": levels} if decoder == "logistic" else {})},
        data,
    )


@pytest.mark.parametrize(
    ("kind", "levels", "decoder", "data"),
    [
        ("discrete", 16, "gaussian", {}),  # a density: dequantized data
        ("discrete", 16, "categorical", {"dequantize": False}),
        ("discrete", 16, "logistic_mixture", {"dequantize": False}),
        ("binary", None, "categorical", {}),  # 0/1 is the grid of 2 levels
    ],
)
def test_an_explicit_decoder_that_fits_the_data_is_kept(
    kind: str, levels: int | None, decoder: str, data: dict
) -> None:
    model, data_options = run_defaults(kind, levels, {"decoder": decoder})
    assert model["decoder"] == decoder and data_options == data
    if decoder != "gaussian":
        assert model["levels"] == (levels or 2)


@pytest.mark.parametrize(
    ("kind", "levels", "decoder", "cls", "x"),
    [
        ("binary", None, None, BernoulliDecoder, torch.bernoulli(torch.full((4, 6), 0.5))),
        ("discrete", 16, None, DiscretizedLogisticDecoder, torch.randint(0, 16, (4, 6)) / 15),
        ("discrete", 16, "categorical", CategoricalDecoder, torch.randint(0, 16, (4, 6)) / 15),
        (
            "discrete",
            4,
            "logistic_mixture",
            DiscretizedLogisticMixtureDecoder,
            torch.randint(0, 4, (4, 6)) / 3,
        ),
        ("continuous", None, None, GaussianDecoder, torch.randn(4, 6)),
    ],
)
def test_the_options_build_a_vae_for_the_data(
    kind: str, levels: int | None, decoder: str | None, cls: type, x: torch.Tensor
) -> None:
    options, _ = run_defaults(kind, levels, {"decoder": decoder, "latent": 2, "hidden": (8,)})
    model = build_vae(6, **options)
    assert isinstance(model.decoder, cls)
    assert getattr(model.decoder, "levels", levels) == levels
    assert torch.isfinite(model.loss(x))


def test_build_vae_without_a_decoder_is_bernoulli() -> None:
    model = build_vae(6, latent=2, hidden=(4,), decoder=None)
    assert isinstance(model.decoder, BernoulliDecoder)
    assert model.config["decoder"] == "bernoulli"


@pytest.mark.parametrize(
    ("kind", "levels", "options", "error", "match"),
    [
        ("continuous", None, {"decoder": "bernoulli"}, ValueError, "decoder: 'bernoulli' cannot"),
        ("continuous", None, {"decoder": "logistic"}, ValueError, "decoder: 'logistic' cannot"),
        ("discrete", 256, {"decoder": "bernoulli"}, ValueError, "decoder: 'bernoulli' cannot"),
        ("binary", None, {"decoder": "gaussian"}, ValueError, "decoder: 'gaussian' cannot"),
        ("binary", None, {"decoder": "poisson"}, ValueError, "decoder: expected one of"),
        ("images", None, {}, ValueError, "kind: expected one of"),
        ("discrete", None, {}, ValueError, "levels: discrete data need an int >= 2"),
        ("discrete", 1, {}, ValueError, "levels: expected an int >= 2"),
        ("binary", 3, {}, ValueError, "levels: binary data have 2 levels"),
        ("continuous", 256, {}, ValueError, "levels: continuous data take levels=None"),
        ("discrete", 16, {"levels": 256}, ValueError, "levels: the 'logistic' decoder takes"),
        ("discrete", 16, [("decoder", "gaussian")], TypeError, "options: expected a dict"),
    ],
)
def test_a_decoder_that_cannot_model_the_data_is_rejected(
    kind: str, levels: int | None, options: object, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        run_defaults(kind, levels, options)  # type: ignore[arg-type]
