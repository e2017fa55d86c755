r"""One-call VAE builders.

``build_vae(784)`` is the one-stochastic-layer architecture of Burda et al. (2016): a
784-200-200-50 encoder and a 50-200-200-784 Bernoulli decoder with tanh units, a standard
normal prior; ``objective="iwae", k=5`` makes it the IWAE of their Table 1.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..checks import check_positive_int
from ..distributions import MixtureOfGaussians, StandardNormal
from ..flows.builders import IAF, MAF
from ..nn.autoencoder import check_hidden, event_layout
from .decoders import BernoulliDecoder, CategoricalDecoder, Decoder, GaussianDecoder
from .encoders import FlowEncoder, GaussianEncoder
from .logistic import DiscretizedLogisticDecoder, DiscretizedLogisticMixtureDecoder
from .model import VAE
from .priors import VampPrior

PRIORS = ("normal", "mog", "vamp", "flow")
DECODERS = ("bernoulli", "gaussian", "logistic", "logistic_mixture", "categorical")
POSTERIORS = ("gaussian", "iaf")
# Decoders of data on the grid i / (levels - 1) in [0, 1], with the data's own levels.
GRID_DECODERS = ("logistic", "logistic_mixture", "categorical")
# Decoders whose data live in [0, 1]: VampPrior pseudo-inputs are kept there too.
_UNIT_DATA = ("bernoulli", *GRID_DECODERS)
# The decoder that follows each kind of data, and the decoders each kind accepts.
_DEFAULT_DECODER = {"continuous": "gaussian", "discrete": "logistic", "binary": "bernoulli"}
_ACCEPTS = {
    "continuous": ("gaussian",),
    "discrete": ("gaussian", *GRID_DECODERS),
    "binary": ("bernoulli", *GRID_DECODERS),
}


def build_decoder(
    kind: str,
    shape: Sequence[int],
    latent: int,
    hidden: Sequence[int],
    activation: str,
    levels: int = 256,
    mixtures: int = 5,
    scale: float | str = "learned",
) -> Decoder:
    r"""A decoder by name: ``"bernoulli"``, ``"gaussian"``, ``"logistic"``,
    ``"logistic_mixture"`` or ``"categorical"``."""
    common = {"hidden": hidden, "activation": activation}
    if kind == "bernoulli":
        return BernoulliDecoder(shape, latent, **common)
    if kind == "gaussian":
        return GaussianDecoder(shape, latent, scale=scale, **common)
    if kind == "logistic":
        return DiscretizedLogisticDecoder(shape, latent, levels=levels, **common)
    if kind == "logistic_mixture":
        return DiscretizedLogisticMixtureDecoder(
            shape, latent, components=mixtures, levels=levels, **common
        )
    if kind == "categorical":
        return CategoricalDecoder(shape, latent, levels=levels, **common)
    raise ValueError(f"decoder: expected one of {DECODERS}, got {kind!r}")


def run_defaults(kind: str, levels: int | None, options: dict) -> tuple[dict, dict]:
    r"""The model options and the data options of a VAE on data of ``kind`` with ``levels``
    values per dimension: the decoder follows the data.

    Without a ``"decoder"`` in ``options`` (or with ``None``) it is ``"bernoulli"`` for
    ``"binary"`` data, ``"logistic"`` (a discretized logistic, Kingma et al. 2016) for
    ``"discrete"`` data and ``"gaussian"`` for ``"continuous"`` data. A decoder on the grid
    :math:`i / (L - 1)` (``"logistic"``, ``"logistic_mixture"``, ``"categorical"``) takes
    ``levels`` from the data (2 for binary data); an explicit decoder that cannot model the
    data (e.g. ``"bernoulli"`` on continuous data) is a ``ValueError``.

    The data options say how the decoder wants its input: ``{"dequantize": False}`` for a grid
    decoder on discrete data (the integers :math:`x` become :math:`x / (L - 1)`, not
    dequantized), else ``{}`` (dequantized discrete data for the Gaussian decoder; binary and
    continuous data as they are).

    Args:
        kind: ``"continuous"``, ``"discrete"`` or ``"binary"``.
        levels: values per dimension: an int >= 2 for discrete data, ``None`` (or 2) for
            binary data, ``None`` for continuous data.
        options: the user's options for :func:`build_vae` (not modified).

    Returns:
        ``(model_options, data_options)``: a copy of ``options`` with ``decoder`` (and
        ``levels`` for a grid decoder) filled in, and the options for the data pipeline.

    Example:
        >>> run_defaults("discrete", 256, {"latent": 32})
        ({'latent': 32, 'decoder': 'logistic', 'levels': 256}, {'dequantize': False})
        >>> run_defaults("continuous", None, {})
        ({'decoder': 'gaussian'}, {})
    """
    if kind not in _DEFAULT_DECODER:
        raise ValueError(f"kind: expected one of {tuple(_DEFAULT_DECODER)}, got {kind!r}")
    if not isinstance(options, dict):
        raise TypeError(f"options: expected a dict, got {type(options).__name__}")
    if kind == "discrete":
        if levels is None:
            raise ValueError("levels: discrete data need an int >= 2, got None")
        check_positive_int(levels, "levels", minimum=2)
    elif kind == "binary" and levels not in (None, 2):
        raise ValueError(f"levels: binary data have 2 levels, got {levels!r}")
    elif kind == "continuous" and levels is not None:
        raise ValueError(f"levels: continuous data take levels=None, got {levels!r}")
    model = dict(options)
    decoder = model.get("decoder") or _DEFAULT_DECODER[kind]
    if decoder not in DECODERS:
        raise ValueError(f"decoder: expected one of {DECODERS}, got {decoder!r}")
    if decoder not in _ACCEPTS[kind]:
        raise ValueError(
            f"decoder: {decoder!r} cannot model {kind} data; use one of {_ACCEPTS[kind]}"
        )
    model["decoder"] = decoder
    if decoder not in GRID_DECODERS:
        return model, {}
    data_levels = 2 if kind == "binary" else levels
    if model.get("levels") not in (None, data_levels):
        raise ValueError(
            f"levels: the {decoder!r} decoder takes the data's {data_levels} levels, got "
            f"levels={model['levels']!r}"
        )
    model["levels"] = data_levels
    return model, ({"dequantize": False} if kind == "discrete" else {})


def check_shape(shape: object) -> tuple[int, ...]:
    r"""The event shape of a VAE: an int ``D`` or a sequence ``(D,)`` or ``(C, H, W)`` of
    positive ints, as a tuple.

    Example:
        >>> check_shape(6), check_shape([1, 8, 8])
        ((6,), (1, 8, 8))
    """
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(f"shape: expected an int D or a sequence (C, H, W), got {shape!r}")
    if any(isinstance(s, bool) or not isinstance(s, int) for s in shape):
        raise TypeError(f"shape: expected ints, got {tuple(shape)!r}")
    if len(shape) not in (1, 3) or any(s < 1 for s in shape):
        raise ValueError(f"shape: expected D or (C, H, W) with sizes >= 1, got {tuple(shape)}")
    event = tuple(shape)
    event_layout(event)
    return event


def build_vae(
    shape: int | Sequence[int],
    latent: int = 50,
    hidden: Sequence[int] = (200, 200),
    prior: str = "normal",
    decoder: str | None = None,
    posterior: str = "gaussian",
    objective: str = "elbo",
    k: int | None = None,
    warmup: int = 0,
    activation: str = "tanh",
    components: int = 10,
    pseudo_inputs: int = 500,
    flow_transforms: int = 2,
    flow_hidden: Sequence[int] = (128, 128),
    levels: int = 256,
    mixtures: int = 5,
    scale: float | str = "learned",
) -> VAE:
    r"""Build a :class:`VAE` from names.

    Args:
        shape: ``D`` (vectors, MLP networks) or ``(C, H, W)`` (images, small conv nets).
        latent: the latent size :math:`L`.
        hidden: dense layer widths of the encoder (the decoder mirrors them).
        prior: ``"normal"`` (standard normal), ``"mog"`` (learnable mixture of ``components``
            Gaussians), ``"vamp"`` (VampPrior with ``pseudo_inputs``), ``"flow"`` (a MAF with
            ``flow_transforms`` layers of ``flow_hidden`` units).
        decoder: ``"bernoulli"`` (binary data; the default for ``None``; see
            :func:`run_defaults` for the decoder that follows a data set), ``"gaussian"``
            (``scale``: a float,
            ``"learned"`` or ``"network"``), ``"logistic"`` / ``"logistic_mixture"``
            (discretized logistic, ``mixtures`` components, ``levels``-valued data in [0, 1]),
            ``"categorical"`` (``levels``-way softmax).
        posterior: ``"gaussian"`` or ``"iaf"`` (an IAF on top of the Gaussian, conditioned on
            the encoder features).
        objective: ``"elbo"`` or ``"iwae"``, with ``k`` samples per example.
        k: samples per example in the training objective; ``None`` takes 1 for the ELBO (the
            VAE of Kingma and Welling 2014, one decoder pass per example) and 5 for the IWAE
            (Burda et al. 2016, Table 1).
        warmup: KL warm-up steps (see :class:`VAE`).
        activation: the hidden-unit nonlinearity (``"tanh"`` as in Burda et al.).

    The returned model's ``config`` holds these arguments (JSON-friendly), so
    ``build_vae(**model.config)`` rebuilds it for loading a ``state_dict``.

    Example:
        >>> import torch
        >>> from tractable.vae import build_vae
        >>> model = build_vae(784)  # Burda et al. (2016): 784-200-200-50, Bernoulli, N(0, I)
        >>> sum(p.numel() for p in model.parameters())
        425284
    """
    event = check_shape(shape)
    decoder = "bernoulli" if decoder is None else decoder
    check_positive_int(latent, "latent")
    hidden = check_hidden(hidden)
    check_hidden(flow_hidden, "flow_hidden")
    for name, value, options in (
        ("prior", prior, PRIORS),
        ("decoder", decoder, DECODERS),
        ("posterior", posterior, POSTERIORS),
    ):
        if value not in options:
            raise ValueError(f"{name}: expected one of {options}, got {value!r}")
    check_positive_int(flow_transforms, "flow_transforms")

    encoder: nn.Module = GaussianEncoder(event, latent, hidden=hidden, activation=activation)
    if posterior == "iaf":
        iaf = IAF(
            latent, context=encoder.features, transforms=flow_transforms, hidden=tuple(flow_hidden)
        )
        encoder = FlowEncoder(encoder, iaf)
    dec = build_decoder(
        decoder, event, latent, tuple(reversed(hidden)), activation, levels, mixtures, scale
    )
    if prior == "normal":
        p_z: nn.Module = StandardNormal(latent)
    elif prior == "mog":
        p_z = MixtureOfGaussians(latent, components=components)
    elif prior == "vamp":
        p_z = VampPrior(
            encoder, pseudo_inputs, bounds=(0.0, 1.0) if decoder in _UNIT_DATA else None
        )
    else:
        p_z = MAF(latent, transforms=flow_transforms, hidden=tuple(flow_hidden))
    if k is None:
        k = 5 if objective == "iwae" else 1
    model = VAE(encoder, dec, p_z, objective=objective, k=k, warmup=warmup)
    model.config = {
        "shape": list(event) if len(event) > 1 else event[0],
        "latent": latent,
        "hidden": list(hidden),
        "prior": prior,
        "decoder": decoder,
        "posterior": posterior,
        "objective": objective,
        "k": k,
        "warmup": warmup,
        "activation": activation,
        "components": components,
        "pseudo_inputs": pseudo_inputs,
        "flow_transforms": flow_transforms,
        "flow_hidden": list(flow_hidden),
        "levels": levels,
        "mixtures": mixtures,
        "scale": scale,
    }
    return model


__all__ = [
    "build_vae",
    "check_shape",
    "build_decoder",
    "run_defaults",
    "PRIORS",
    "DECODERS",
    "GRID_DECODERS",
    "POSTERIORS",
]
