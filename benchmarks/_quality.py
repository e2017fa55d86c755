r"""Quality at an equal budget: test bits/dim on digits after the same training for everyone.

scikit-learn's 8x8 digits (17 levels, 64 dims; tractable's seeded 80/10/10 split) are
dequantized with uniform noise and mapped to logit space by ``tr.data`` (the same
:class:`~tractable.data.Preprocessor` for every library). Every model sees the same sequence of
training batches (drawn and dequantized once, before the clock starts), with Adam at the same
learning rate for the same number of steps. The test split is dequantized once with a fixed
generator, and bits/dim come from :func:`tractable.data.nll_to_report`, which adds the logit
map's log-Jacobian and the :math:`D \log L` term of the discrete bound (Theis et al. 2016).

Digits has only 1,437 training images, and at 3,000 steps of 128 (about 270 epochs) every flow
overfits: NSF's test bits/dim are lowest after about 500 steps and rise after. So besides the
final weights, every model is also evaluated every ``eval_every`` steps and reported at its best
validation figure (early stopping, as the MAF paper selects its models), with the training time
it took to get there (evaluation time excluded). The procedure is the same for every library.

scikit-learn's full-covariance Gaussian mixture, fitted to 10 dequantized copies of the training
split with the number of components chosen on the validation split, is the floor.
"""

from __future__ import annotations

import sys
import time

import torch
from _models import Bench, Config, build

import tractable as tr

# lambda of the logit transform (RealNVP's): keeps the data inside the splines' [-5, 5], where
# lambda = 1e-6 (MAF's MNIST choice) sends the extreme levels to +-13.8, far into the tails
LOGIT = 0.05


def _batches(ds: tr.data.Dataset, steps: int, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, ds.train.shape[0], (steps, batch), generator=g)
    raw = ds.train[idx.reshape(-1)]
    return ds.preprocess.train_batch(raw, generator=g).reshape(steps, batch, -1)


def _evaluate(bench: Bench, y: torch.Tensor, ladj: torch.Tensor, ds: tr.data.Dataset) -> float:
    with torch.no_grad():
        log_p = torch.cat([bench.log_prob(chunk) for chunk in y.split(512)])
    if not bool(torch.isfinite(log_p).all()):
        return float("nan")
    return tr.data.nll_to_report(-log_p, ladj, ds)["bpd"]


def train_and_test(
    bench: Bench,
    ds: tr.data.Dataset,
    batches: torch.Tensor,
    lr: float,
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    eval_every: int = 100,
) -> dict[str, object]:
    r"""Train ``bench`` on ``batches`` ``(steps, B, D)`` with Adam; test and validation bpd of
    the final weights, and of the weights with the best validation bpd among the evaluations
    every ``eval_every`` steps (``best_*``; ``best_wall`` is the training time up to them)."""
    opt = torch.optim.Adam(bench.module.parameters(), lr=lr)
    bench.module.train()
    wall = cpu = 0.0
    best: dict[str, float] = {"best_val": float("inf")}
    for step, y in enumerate(batches, 1):
        start, cpu0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = bench.loss(y)
        loss.backward()
        opt.step()
        wall, cpu = wall + time.perf_counter() - start, cpu + time.process_time() - cpu0
        if step % eval_every == 0 or step == len(batches):
            bench.module.eval()
            out = {name: _evaluate(bench, y, ladj, ds) for name, (y, ladj) in splits.items()}
            bench.module.train()
            if out["val"] < best["best_val"]:
                best = {"best_val": out["val"], "best_test": out["test"], "best_step": step,
                        "best_wall": wall}
    bench.module.eval()
    return {"library": bench.library, "family": bench.family, "wall": wall, "cpu": cpu, **out,
            **best}


def gaussian_mixture(
    ds: tr.data.Dataset, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], seed: int
) -> dict[str, object]:
    r"""The floor: a full-covariance Gaussian mixture in the same logit space."""
    from sklearn.mixture import GaussianMixture

    g = torch.Generator().manual_seed(seed + 1)
    train = torch.cat([ds.preprocess.train_batch(ds.train, generator=g) for _ in range(10)])
    best: dict[str, object] = {}
    start = time.perf_counter()
    for k in (1, 2, 5, 10, 20):
        gm = GaussianMixture(k, covariance_type="full", random_state=seed, reg_covar=1e-4)
        gm.fit(train.double().numpy())
        scores = {}
        for name, (y, ladj) in splits.items():
            log_p = torch.as_tensor(gm.score_samples(y.double().numpy()))
            scores[name] = tr.data.nll_to_report(-log_p, ladj.double(), ds)["bpd"]
        if not best or scores["val"] < best["val"]:
            best = {"library": "scikit-learn", "family": f"gmm-{k}", **scores}
    best["wall"] = time.perf_counter() - start
    return best


def run(
    libraries: tuple[str, ...],
    families: tuple[str, ...] = ("maf", "nsf-ar"),
    steps: int = 3000,
    batch: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    gmm: bool = True,
    eval_every: int = 100,
) -> dict[str, object]:
    r"""Train every (library, family) on digits; return the rows and the settings."""
    ds = tr.data.load("digits", seed=seed, logit=LOGIT)
    batches = _batches(ds, steps, batch, seed)
    gens = {"val": 10, "test": 11}
    splits = {
        name: ds.preprocess.eval(ds.split(name), torch.Generator().manual_seed(g))
        for name, g in gens.items()
    }
    rows = []
    for family in families:
        for lib in libraries:
            bench = build(lib, family, ds.dims, Config(), seed=seed)
            row = train_and_test(bench, ds, batches, lr, splits, eval_every)
            row["params"] = bench.parameters()
            rows.append(row)
            print(
                f"digits {family:7s} {lib:16s} test {row['test']:.3f} bits/dim "
                f"(val {row['val']:.3f}) in {row['wall']:.1f} s; at the best validation "
                f"(step {row['best_step']}): test {row['best_test']:.3f} in "
                f"{row['best_wall']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    if gmm:
        rows.append(gaussian_mixture(ds, splits, seed))
    settings = {
        "dataset": repr(ds),
        "logit": LOGIT,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "optimizer": "Adam",
        "seed": seed,
        "eval_every": eval_every,
    }
    return {"rows": rows, "settings": settings}
