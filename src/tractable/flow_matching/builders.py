r"""The flow-matching builder and the run defaults that say what it needs from the data.

Example:
    >>> fm = build_flow_matching((2,), hidden=(16, 16), coupling="ot")
    >>> type(fm).__name__, fm.coupling, fm.likelihood
    ('FlowMatching', 'ot', 'exact')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..flows.defaults import LOGIT
from ..nn.unet import field_network
from .model import FlowMatching


def build_flow_matching(
    shape: int | Sequence[int],
    context: int = 0,
    hidden: Sequence[int] = (128, 128, 128),
    embedding: int = 32,
    activation: str = "silu",
    time_scale: float = 10.0,
    network: str = "auto",
    width: int = 32,
    drop: float = 0.0,
    guidance: float = 0.0,
    sigma_min: float = 0.0,
    coupling: str = "independent",
    solver: str = "dopri5",
    atol: float = 1e-5,
    rtol: float = 1e-5,
    steps: int | None = None,
    divergence: str = "auto",
    ema: float = 0.0,
    times: str = "uniform",
    likelihood_after: int | None = None,
    likelihood_steps: int = 8,
    target: str = "conditional",
    reference: int = 0,
) -> FlowMatching:
    r"""Build a :class:`FlowMatching` model with a velocity field for events of ``shape``:
    a :class:`~tractable.nn.time.TimeMLP` (``network="mlp"``; images are flattened by the
    network and reshaped back) or, for images, a :class:`~tractable.nn.unet.UNet`
    (``network="unet"``, ``width`` channels in the first level; with a context, class
    dropout ``drop`` in training and classifier-free ``guidance`` in sampling). The default
    ``"auto"`` takes the U-Net for images ``(C, H, W)`` and the MLP for vectors.

    Args:
        hidden, embedding, activation: the network's (see :class:`~tractable.nn.time.TimeMLP`).
        time_scale: the time embedding's scale. 10, not DDPM's 1000: the field then changes
            slowly with time and the ODE takes far fewer steps (on a randomly initialised
            3-feature field, dopri5 at tolerance 1e-9 took 176 evaluations at scale 10
            against 6824 at 1000; RK4 with 16 steps reached 4e-8 against 2e-5).
        sigma_min, coupling, solver, atol, rtol, steps, divergence, ema: as for
            :class:`FlowMatching`; ``steps`` only with a fixed-step solver (``"rk4"``,
            ``"euler"``, ...).
        times, likelihood_after, likelihood_steps: as for :class:`FlowMatching`.
        target, reference: as for :class:`FlowMatching`.

    Measured on 8gaussians (5000 test points, whose true density gives 2.853 nats; one
    machine, load 3 to 4 on 2 cores): the defaults reach a test NLL of 3.04 after the
    trainer's 2000 steps, and 2.888 +- 0.015 after 8000 steps with ``--lr 3e-3``, a cosine
    learning-rate schedule and ``ema=0.999`` (50 s of training), where the default NSF run
    reaches 2.887 +- 0.014 in 33 s; minibatch OT couplings gave 3.25 after 2000 steps. With
    ``hidden=(64, 64, 64, 64)``, ``time_scale=1``, ``sigma_min=0.05`` and
    ``target="stable"``, 10,000 steps at ``--lr 1e-2`` with the cosine schedule reach 2.8579 on
    average over three seeds (the true density: 2.8526) in 0.7x the NSF run's time
    (BENCHMARKS.md, issue 14).
    """
    event = (shape,) if isinstance(shape, int) and not isinstance(shape, bool) else tuple(shape)
    net = field_network(
        event, context, network, hidden, embedding, activation, time_scale, width, drop, guidance
    )
    return FlowMatching(
        net,
        event,
        context=context,
        sigma_min=sigma_min,
        coupling=coupling,
        solver=solver,
        atol=atol,
        rtol=rtol,
        steps=steps,
        divergence=divergence,
        ema=ema,
        times=times,
        likelihood_after=likelihood_after,
        likelihood_steps=likelihood_steps,
        target=target,
        reference=reference,
    )


# flow matching's settings for continuous data, measured on the 2-D toys (run_defaults)
CONTINUOUS = {"hidden": [64, 64, 64, 64], "time_scale": 1.0, "sigma_min": 0.05}


def run_defaults(
    kind: str, levels: int | None, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""``(model options, preprocessing overrides)`` for flow matching on data of ``kind``: a
    density model on continuous values, so discrete and binary data are dequantized into
    :math:`[0, 1]` (the default preprocessing), and discrete data then mapped into logit space
    as for the other flows (:data:`tractable.flows.defaults.LOGIT`), whose spread is nearer the
    unit-variance noise the paths start from.

    Continuous data (the toys and tabular sets) get the settings measured on the 2-D toys
    (``CONTINUOUS``), each only where the user gave none: a 64x4 field seeing time at
    scale 1, ``sigma_min = 0.05`` and the stable target field (with independent couplings;
    ``coupling="ot"`` keeps the conditional target). With the command line's other defaults
    (2,000 steps of 256, Adam 1e-3), seeds 0 / 1, test NLL in nats: 8gaussians 3.070 / 3.092
    with the builder's defaults against 2.893 / 2.906, moons 2.812 / 2.708 against 2.490 /
    2.475, in 0.7x the run's time (a smaller, smoother field: fewer ODE evaluations). On
    seed 0: time scale 1 alone 3.138 / 2.690; without the stable target 2.975 / 2.546; with
    the 128x3 field 2.927 / 2.517 (``BENCHMARKS.md``). Images keep the builder's defaults.

    Example:
        >>> run_defaults("discrete", 256, {})
        ({}, {'logit': 0.05})
        >>> run_defaults("continuous", None, {"coupling": "ot"})[0]["target"]
        'conditional'
    """
    out = dict(options)
    if kind == "continuous":
        for name, value in CONTINUOUS.items():
            out.setdefault(name, value)
        independent = out.get("coupling", "independent") == "independent"
        out.setdefault("target", "stable" if independent else "conditional")
    return out, ({"logit": LOGIT} if kind == "discrete" else {})


__all__ = ["CONTINUOUS", "build_flow_matching", "run_defaults"]
