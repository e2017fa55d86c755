"""Birthday-paradox test: planted duplicates, none in continuous data, brute-force counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

from tractable.metrics import BirthdayResult, birthday, plot_birthday_pairs


def test_finds_planted_duplicates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)) * 5.0 + 100.0  # an offset stresses the distance round-off
    planted = {(3, 250), (17, 42), (100, 299)}
    for i, j in planted:
        x[j] = x[i]
    result = birthday(x, top_k=5, chunk_size=64)
    assert result.n_duplicates == 3
    assert {tuple(p) for p in result.pairs[:3].tolist()} == planted
    np.testing.assert_array_equal(result.distances[:3], 0.0)
    assert result.distances[3] > 1.0
    assert result.support_estimate == pytest.approx(300 * 299 / 2 / 3)


def test_no_duplicates_in_continuous_random_data():
    x = np.random.default_rng(1).random((400, 8))
    result = birthday(torch.from_numpy(x))
    assert result.n_duplicates == 0
    assert result.support_estimate is None
    assert result.distances.min() > 0


def test_threshold_count_and_closest_pairs_match_brute_force():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 3))
    d = pdist(x)
    threshold = float(np.quantile(d, 0.01))
    result = birthday(x, threshold=threshold, top_k=10, chunk_size=7)
    assert result.n_duplicates == int((d <= threshold).sum())
    full = squareform(d)
    i, j = np.triu_indices(120, k=1)
    order = np.argsort(full[i, j])[:10]
    np.testing.assert_allclose(result.distances, full[i, j][order], rtol=1e-12)
    np.testing.assert_array_equal(result.pairs, np.stack([i[order], j[order]], axis=1))


def test_support_estimate_of_a_uniform_discrete_distribution():
    # N = 300 draws from S = 1000 equally likely items: about C(300, 2) / S = 44.9 colliding
    # pairs (Poisson-like, sd ~ 6.7), so the estimate is S within roughly +-30% at 2 sd.
    rng = np.random.default_rng(3)
    items = rng.normal(size=(1000, 5))
    x = items[rng.integers(0, 1000, size=300)]
    result = birthday(x)
    assert 700 < result.support_estimate < 1400


def test_images_are_flattened_and_plot_is_written(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.random((12, 3, 4, 4))
    images[9] = images[1]
    result = birthday(images, top_k=4)
    assert result.pairs[0].tolist() == [1, 9]
    path = plot_birthday_pairs(images, result, (3, 4, 4), tmp_path / "sub" / "pairs.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grey = rng.normal(size=(6, 9))
    assert plot_birthday_pairs(grey, np.array([[0, 1]]), (3, 3), tmp_path / "g.png").is_file()


def test_birthday_rejects_bad_inputs(tmp_path):
    x = np.random.default_rng(5).random((6, 4))
    with pytest.raises(ValueError, match="samples: expected at least 2 rows"):
        birthday(x[:1])
    with pytest.raises(ValueError, match="threshold: expected a float >= 0"):
        birthday(x, threshold=-1.0)
    with pytest.raises(ValueError, match="image_shape: expected 4 values"):
        plot_birthday_pairs(x, birthday(x), (3, 3), tmp_path / "a.png")
    with pytest.raises(ValueError, match="image_shape: expected \\(H, W\\)"):
        plot_birthday_pairs(x, birthday(x), (2, 1, 2, 1), tmp_path / "a.png")
    with pytest.raises(ValueError, match="pairs: expected indices in \\[0, 5\\]"):
        plot_birthday_pairs(x, np.array([[0, 6]]), (2, 2), tmp_path / "a.png")
    assert isinstance(birthday(x), BirthdayResult)
