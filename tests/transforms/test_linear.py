import pytest
import torch

import tractable as tr


def _randomize(t: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("batch", [3, 40])  # below and above D: both forward paths
def test_lu_linear_matches_its_dense_matrix(batch):
    torch.manual_seed(0)
    d = 7
    t = tr.transforms.LULinear(d).double()
    _randomize(t)
    L, U = t._factors()
    assert torch.equal(L, torch.tril(L)) and torch.equal(torch.diagonal(L), torch.ones(d).double())
    assert torch.equal(U, torch.triu(U))
    P = torch.zeros(d, d, dtype=torch.float64)
    P[torch.arange(d), t.perm] = 1.0
    W = P @ L @ U
    torch.testing.assert_close(t.weight(), W)
    x = torch.randn(batch, d, dtype=torch.float64)
    z, ladj = t(x)
    torch.testing.assert_close(z, x @ W.T + t.bias)
    torch.testing.assert_close(ladj, torch.linalg.slogdet(W)[1].expand(batch))
    x_back, ladj_inv = t.inverse(z)
    torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(ladj_inv, -ladj)


def test_lu_linear_stores_only_free_entries():
    d = 10
    t = tr.transforms.LULinear(d)
    assert sum(p.numel() for p in t.parameters()) == d * d + d
    assert t.perm.dtype == torch.int64 and sorted(t.perm.tolist()) == list(range(d))


def test_lu_linear_initial_matrix_is_a_rotation_and_reloads():
    torch.manual_seed(3)
    t = tr.transforms.LULinear(6).double()
    W = t.weight()
    torch.testing.assert_close(W @ W.T, torch.eye(6, dtype=torch.float64))
    fresh = tr.transforms.LULinear(6).double()
    fresh.load_state_dict(t.state_dict())
    torch.testing.assert_close(fresh.weight(), W)


def test_lu_linear_loads_checkpoints_of_the_full_matrix_layout():
    # the layout before packing: full lower/upper matrices, a permutation matrix P and eye
    torch.manual_seed(1)
    d = 5
    t = tr.transforms.LULinear(d).double()
    _randomize(t, seed=2)
    L, U = t._factors()
    P = torch.zeros(d, d, dtype=torch.float64)
    P[torch.arange(d), t.perm] = 1.0
    old = {
        "P": P,
        "sign": t.sign.clone(),
        "lower": torch.tril(L, -1) + torch.triu(torch.randn(d, d), 0),  # junk above is ignored
        "upper": torch.triu(U, 1) + torch.tril(torch.randn(d, d), 0),
        "log_diag": t.log_diag.detach().clone(),
        "bias": t.bias.detach().clone(),
        "eye": torch.eye(d),
    }
    fresh = tr.transforms.LULinear(d).double()
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh.weight(), P @ L @ U)
    x = torch.randn(3, d)
    torch.testing.assert_close(fresh(x)[0], t(x)[0])
