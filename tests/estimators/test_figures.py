"""The Jensen-bias figure and the analytic relative variance behind its prediction."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from tractable.estimators import LinearGaussian, jensen_bias, jensen_bias_figure
from tractable.estimators.figures import _relative_variance


def test_relative_variance_formula_matches_monte_carlo() -> None:
    model = LinearGaussian.random(3, 2, sigma=1.0, seed=0)
    x = model.sample(3)
    rho = _relative_variance(model, x)
    z = torch.randn(400_000, 2)
    for i in range(3):
        w = torch.exp(
            model.log_likelihood(x[i].expand(z.shape[0], -1), z) - model.log_marginal(x[i : i + 1])
        )
        # E[w] = 1 under the prior, and E[w^2] - 1 = rho
        assert abs(float(w.mean()) - 1) < 4 * float(w.std()) / math.sqrt(z.shape[0])
        m2 = w.pow(2)
        assert abs(float(m2.mean()) - 1 - float(rho[i])) < 4 * float(m2.std()) / math.sqrt(
            z.shape[0]
        )


def test_bias_is_negative_and_shrinks_with_k() -> None:
    out = jensen_bias(ks=(1, 10, 100), repeats=200, seed=0)
    bias, se = out["bias"], out["bias_se"]
    assert bias[0] < bias[1] < bias[2]
    assert all(b + 3 * s < 0 for b, s in zip(bias, se, strict=True))
    # the asymptotic 1/k law: at k = 100 the bias agrees with -rho / (2k)
    assert abs(bias[2] - out["predicted"][2]) < 3 * se[2]


def test_figure_is_written(tmp_path: Path) -> None:
    path = tmp_path / "jensen.png"
    out = jensen_bias_figure(path, ks=(1, 10), repeats=10)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["k"] == [1.0, 10.0]
