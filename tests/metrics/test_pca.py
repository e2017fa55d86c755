"""PCA comparison: spectra against scikit-learn and exact scalings; the plot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from tractable.metrics import pca_comparison, plot_pca_comparison


def _data(n: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    return (rng.normal(size=(n, 5)) * np.array([4.0, 2.0, 1.0, 0.5, 0.1])) @ q.T + 3.0


def test_spectrum_matches_scikit_learn():
    x = _data()
    out = pca_comparison(x, x[:200], k=3)
    reference = PCA(n_components=3).fit(x)
    np.testing.assert_allclose(out["data_explained_variance"], reference.explained_variance_)
    np.testing.assert_allclose(
        out["data_explained_variance_ratio"], reference.explained_variance_ratio_
    )
    np.testing.assert_allclose(
        np.abs(out["components"] @ reference.components_.T), np.eye(3), atol=1e-8
    )
    np.testing.assert_allclose(out["mean"], x.mean(axis=0))


def test_scaled_samples_have_scaled_spectrum_and_same_ratios():
    x = _data()
    out = pca_comparison(x, 0.5 * x + 7.0, k=5)
    np.testing.assert_allclose(
        out["samples_explained_variance"], 0.25 * out["data_explained_variance"], rtol=1e-10
    )
    np.testing.assert_allclose(
        out["samples_explained_variance_ratio"], out["data_explained_variance_ratio"], rtol=1e-10
    )
    np.testing.assert_allclose(
        out["samples_variance_on_data_components"],
        0.25 * out["data_explained_variance"],
        rtol=1e-10,
    )
    assert out["samples_total_variance"] == pytest.approx(0.25 * out["data_total_variance"])


def test_variance_on_data_axes_detects_a_missing_direction():
    x = _data()
    centred = x - x.mean(axis=0)
    first = pca_comparison(x, x, k=5)["components"][0]
    # samples lacking all variance along the data's first axis
    collapsed = centred - np.outer(centred @ first, first)
    out = pca_comparison(x, collapsed, k=5)
    assert out["samples_variance_on_data_components"][0] == pytest.approx(0.0, abs=1e-20)
    np.testing.assert_allclose(
        out["samples_variance_on_data_components"][1:],
        out["data_explained_variance"][1:],
        rtol=1e-10,
    )


def test_fewer_rows_than_components_pads_with_zeros():
    x = _data(n=3)
    out = pca_comparison(x, x, k=5)
    # 3 centred rows have rank 2: the third eigenvalue is round-off, the last two are padding
    assert out["data_explained_variance"][2] == pytest.approx(0.0, abs=1e-20)
    assert out["data_explained_variance"][3:].tolist() == [0.0, 0.0]
    assert out["data_explained_variance"][1] > 0.01


def test_plot_is_written(tmp_path):
    x = _data()
    path = plot_pca_comparison(torch.from_numpy(x), x * 0.8, tmp_path / "pca.png", k=5)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_pca_rejects_bad_inputs(tmp_path):
    x = _data()
    with pytest.raises(ValueError, match="k: expected at most F = 5"):
        pca_comparison(x, x, k=6)
    with pytest.raises(ValueError, match="samples: expected 5 features"):
        pca_comparison(x, x[:, :3])
    with pytest.raises(ValueError, match="at least 2 features"):
        plot_pca_comparison(x[:, :1], x[:, :1], tmp_path / "p.png")


def test_values_whose_variance_overflows_are_named() -> None:
    # found by the fuzz suite: NaN explained variances for values near 1e308
    import numpy as np
    import pytest

    from tractable.metrics import pca_comparison

    with pytest.raises(ValueError, match="samples: the mean or variance overflows float64"):
        pca_comparison(np.array([[0.0], [1.0]]), np.array([[1e308], [0.0]]), 1)
