"""The drawing functions of tractable.plots."""

from __future__ import annotations

import math

import matplotlib.image
import numpy as np
import pytest
import torch

from tractable.plots import density_2d, mosaic, save_image_grid, scatter_2d


def test_save_image_grid(tmp_path) -> None:
    x = torch.rand(5, 1, 3, 4)
    grid = save_image_grid(x, tmp_path / "sub" / "grid.png", nrow=2, padding=1)
    assert grid.shape == (3 * 4 + 1, 2 * 5 + 1)
    np.testing.assert_array_equal(grid[1:4, 6:10], x[1, 0].numpy())
    assert grid[0].min() == 1.0  # padding
    back = matplotlib.image.imread(tmp_path / "sub" / "grid.png")
    for channel in range(3):  # 8-bit grey: the nearest of 256 levels
        np.testing.assert_allclose(back[..., channel], grid, atol=0.5 / 255 + 1e-6, rtol=0)
    rgb = save_image_grid(2 * torch.rand(3, 3, 2, 2) - 1, tmp_path / "rgb.png", value_range=(-1, 1))
    assert rgb.shape == (6, 3 * 4 + 2, 3) and rgb.min() >= 0 and rgb.max() <= 1
    with pytest.raises(ValueError, match=r"x: expected images of shape \(N, 1 or 3, H, W\)"):
        save_image_grid(torch.rand(2, 2, 3, 3), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="x: expected finite values"):
        save_image_grid(torch.full((1, 1, 2, 2), math.nan), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="value_range"):
        save_image_grid(torch.rand(1, 1, 2, 2), tmp_path / "bad.png", value_range=(1, 0))


# -- variational dequantization ---------------------------------------------------------------
L = 4
A, B = torch.tensor([2.0, 0.7]), torch.tensor([3.0, 1.5])


def test_density_panels_follow_the_likelihood(tmp_path) -> None:
    data, samples = torch.randn(200, 2), torch.randn(300, 2)
    normal = torch.distributions.Normal(0.0, 1.0)
    assert density_2d(lambda p: normal.log_prob(p).sum(1), data, samples, tmp_path / "a.png")
    # a model without an exact density: data and samples only
    assert density_2d(None, data, samples, tmp_path / "b.png").is_file()
    assert scatter_2d(samples, tmp_path / "c.png").is_file()
    with pytest.raises(ValueError, match=r"points: expected shape \(N, 2\)"):
        scatter_2d(torch.zeros(3, 3), tmp_path / "d.png")
    grid = mosaic(torch.zeros(5, 1, 2, 2), nrow=3)
    assert grid.shape == (2 * 3 + 1, 3 * 3 + 1) and grid[1, 1] == 0.0 and grid[0, 0] == 1.0
