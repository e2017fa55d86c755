r"""The map from raw data to the space a model sees, with its exact log-Jacobian.

A :class:`Preprocessor` turns a batch of raw data ``x`` (as stored in a
:class:`~tractable.data.Dataset`) into the model's input ``y`` and returns, for evaluation, the
log-absolute-determinant of that map per example, so that likelihoods can be reported in the
data space rather than in the model space.

Three kinds of data:

* ``"continuous"``: optional standardisation with training statistics,
  :math:`y = (x - \mu) / \sigma`, :math:`\log|\det J| = -\sum_i \log \sigma_i`.
* ``"discrete"`` (integers :math:`0 \dots L-1`): uniform dequantization onto :math:`[0, 1]^D`
  (Uria et al. 2013; Theis et al. 2016), :math:`u = (x + v) / L` with
  :math:`v \sim \mathcal{U}[0, 1)^D`, then an optional logit transform (Dinh et al. 2017,
  RealNVP) :math:`y = \operatorname{logit}(\lambda + (1 - 2\lambda) u)` whose log-Jacobian is

  .. math::
      \log|\det J| = \sum_i \left[\log(1 - 2\lambda) - \log s_i - \log(1 - s_i)\right],
      \qquad s = \lambda + (1 - 2\lambda) u.

  The returned log-Jacobian is that of :math:`u \mapsto y` only: the scaling by :math:`1/L` is
  accounted for by the :math:`D \log L` term of the discrete bound (see :func:`nll_to_report`).
* ``"binary"``: values in :math:`\{0, 1\}`; with ``binarize="dynamic"`` the raw training data
  are intensities in :math:`[0, 1]` and every batch is a fresh draw
  :math:`y \sim \operatorname{Bernoulli}(x)` (Salakhutdinov and Murray 2008; Burda et al. 2016).

Example:
    >>> import torch
    >>> from tractable.data import Preprocessor
    >>> p = Preprocessor((2,), "discrete", levels=4, logit=0.05)
    >>> y, ladj = p.eval(torch.tensor([[0.0, 3.0]]), torch.Generator().manual_seed(0))
    >>> y.shape, ladj.shape
    (torch.Size([1, 2]), torch.Size([1]))
    >>> p.inverse(y).tolist()
    [[0.0, 3.0]]
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_event, validation_enabled
from ..metrics.likelihood import bits_per_dim, mean_and_se

__all__ = ["KINDS", "Preprocessor", "fit_standardizer", "nll_to_report"]

KINDS = ("continuous", "discrete", "binary")
_FORMAT_VERSION = 1


def _check_shape(shape: object) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple | list) or len(shape) == 0:
        raise TypeError(f"shape: expected a non-empty tuple of ints, got {shape!r}")
    out = []
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"shape: expected positive ints, got {tuple(shape)!r}")
        out.append(int(s))
    return tuple(out)


def _as_stat(value: object, name: str, shape: tuple[int, ...]) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).detach().clone()
    if tuple(t.shape) != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, found NaN or infinity")
    return t


class Preprocessor:
    r"""Raw data to model space, with the log-Jacobian needed to report data-space likelihoods.

    Args:
        shape: the event shape of one example, e.g. ``(64,)`` or ``(1, 28, 28)``.
        kind: ``"continuous"``, ``"discrete"`` or ``"binary"``.
        levels: number of values per dimension of discrete data (e.g. 256); 2 for binary data.
        mean, std: standardisation statistics of shape ``shape`` (continuous data only).
        logit: :math:`\lambda \in (0, 0.5)` of the logit transform after dequantization
            (discrete data only); RealNVP used 0.05 on CIFAR-10, MAF 1e-6 on MNIST.
        binarize: ``"dynamic"`` to draw a Bernoulli sample of the raw intensities in every
            batch (binary data only), ``None`` when the raw data are already 0/1.
        dequantize: for discrete data, ``True`` (default) for a density model: uniform
            dequantization, then the optional logit; ``False`` for a model of the probability
            mass on the grid (a VAE with a discretized decoder): :math:`y = x / (L - 1)`, the
            grid :math:`i / (L - 1)` in :math:`[0, 1]`, with no noise and no Jacobian.

    Example:
        >>> import torch
        >>> p = Preprocessor((2,), "continuous", mean=[1.0, 0.0], std=[2.0, 1.0])
        >>> y, ladj = p.eval(torch.tensor([[3.0, 1.0]]))
        >>> y.tolist(), round(float(ladj[0]), 6) == round(-math.log(2.0), 6)
        ([[1.0, 1.0]], True)
    """

    def __init__(
        self,
        shape: tuple[int, ...] | int,
        kind: str = "continuous",
        *,
        levels: int | None = None,
        mean: Tensor | list | None = None,
        std: Tensor | list | None = None,
        logit: float | None = None,
        binarize: str | None = None,
        dequantize: bool = True,
    ) -> None:
        self.shape = _check_shape(shape)
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
        self.kind = kind
        if kind == "binary" and levels is None:
            levels = 2
        if levels is not None and (isinstance(levels, bool) or not isinstance(levels, int)):
            raise TypeError(f"levels: expected an int or None, got {type(levels).__name__}")
        if kind == "discrete" and (levels is None or levels < 2):
            raise ValueError(f"levels: discrete data need an int >= 2, got {levels!r}")
        if kind == "binary" and levels != 2:
            raise ValueError(f"levels: binary data have 2 levels, got {levels!r}")
        if kind == "continuous" and levels is not None:
            raise ValueError(f"levels: continuous data take levels=None, got {levels!r}")
        self.levels = levels

        if (mean is None) != (std is None):
            raise ValueError("mean, std: give both standardisation statistics or neither")
        if mean is not None and kind != "continuous":
            raise ValueError(f"mean, std: standardisation is for continuous data, not {kind!r}")
        self.mean = None if mean is None else _as_stat(mean, "mean", self.shape)
        self.std = None if std is None else _as_stat(std, "std", self.shape)
        if self.std is not None and not bool((self.std > 0).all()):
            raise ValueError("std: expected strictly positive values")

        if logit is not None:
            if kind != "discrete":
                raise ValueError(f"logit: the logit transform is for discrete data, not {kind!r}")
            if isinstance(logit, bool) or not isinstance(logit, int | float):
                raise TypeError(f"logit: expected a float or None, got {type(logit).__name__}")
            if not 0.0 < float(logit) < 0.5:
                raise ValueError(f"logit: expected lambda in (0, 0.5), got {logit!r}")
            logit = float(logit)
        self.logit = logit

        if binarize not in (None, "dynamic"):
            raise ValueError(f"binarize: expected None or 'dynamic', got {binarize!r}")
        if binarize is not None and kind != "binary":
            raise ValueError(f"binarize: only binary data are binarized, not {kind!r}")
        self.binarize = binarize
        if not isinstance(dequantize, bool):
            raise TypeError(f"dequantize: expected a bool, got {type(dequantize).__name__}")
        if not dequantize and kind != "discrete":
            raise ValueError(f"dequantize: only discrete data are dequantized, not {kind!r}")
        if not dequantize and logit is not None:
            raise ValueError("logit: the logit transform needs dequantized data (dequantize=True)")
        self.dequantize = dequantize

    @property
    def dims(self) -> int:
        r"""Number of dimensions :math:`D` of one example."""
        return math.prod(self.shape)

    def __repr__(self) -> str:
        parts = [f"shape={self.shape}", f"kind={self.kind!r}"]
        if self.levels is not None:
            parts.append(f"levels={self.levels}")
        if self.mean is not None:
            parts.append("standardize=True")
        if self.logit is not None:
            parts.append(f"logit={self.logit}")
        if self.binarize is not None:
            parts.append(f"binarize={self.binarize!r}")
        if not self.dequantize:
            parts.append("dequantize=False")
        return f"Preprocessor({', '.join(parts)})"

    # ---------------------------------------------------------------- checks
    def _check(self, x: object, name: str, intensities: bool = False) -> Tensor:
        x = check_event(x, name, self.shape)
        if not validation_enabled():
            return x
        if self.kind == "discrete":
            top = self.levels - 1
            bad = (x < 0) | (x > top) | (x != torch.round(x))
            if bool(bad.any()):
                raise ValueError(
                    f"{name}: expected raw integer values in 0..{top}, found "
                    f"{int(bad.sum())} other values (e.g. {float(x[bad][0])!r}); pass the raw "
                    "data, not data already scaled or dequantized"
                )
        elif self.kind == "binary":
            if intensities:
                bad = (x < 0) | (x > 1)
                expected = "intensities in [0, 1]"
            else:
                bad = (x != 0) & (x != 1)
                expected = "values in {0, 1}"
            if bool(bad.any()):
                raise ValueError(
                    f"{name}: expected {expected}, found {int(bad.sum())} other values "
                    f"(e.g. {float(x[bad][0])!r})"
                )
        return x

    # ---------------------------------------------------------------- maps
    def forward(self, x: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""The deterministic map ``x -> (y, ladj)`` given the dequantization ``noise``.

        ``noise`` (same shape as ``x``, values in :math:`[0, 1)`) is required for discrete
        data and ignored otherwise; binary data pass through unchanged with ``ladj = 0``.

        Returns:
            ``y`` of shape ``(N, *shape)`` and ``ladj`` of shape ``(N,)``.
        """
        return self._map(self._check(x, "x"), noise)

    def _map(self, x: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor]:
        n = x.shape[0]
        if self.kind == "continuous":
            if self.mean is None:
                return x, x.new_zeros(n)
            mean = self.mean.to(dtype=x.dtype, device=x.device)
            std = self.std.to(dtype=x.dtype, device=x.device)
            ladj = -torch.log(std).sum()
            return (x - mean) / std, ladj.expand(n).clone()
        if self.kind == "binary":
            return x, x.new_zeros(n)
        if not self.dequantize:
            return x / (self.levels - 1), x.new_zeros(n)
        if noise is None:
            raise ValueError("noise: discrete data need dequantization noise, got None")
        if not isinstance(noise, Tensor) or noise.shape != x.shape:
            got = tuple(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__
            raise ValueError(f"noise: expected a tensor of shape {tuple(x.shape)}, got {got}")
        u = (x + noise.to(x.dtype)) / self.levels
        if self.logit is None:
            return u, x.new_zeros(n)
        lam = self.logit
        s = lam + (1.0 - 2.0 * lam) * u
        y = torch.log(s) - torch.log1p(-s)
        # -log s - log(1 - s) written with softplus of y, which stays accurate when s is near 0 or 1
        per_dim = math.log1p(-2.0 * lam) + F.softplus(y) + F.softplus(-y)
        return y, per_dim.reshape(n, -1).sum(dim=1)

    def _noise(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    def train_batch(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""A training batch in model space: fresh dequantization noise (discrete data) or a
        fresh Bernoulli draw (``binarize="dynamic"``) at every call.

        ``generator=None`` uses torch's global generator (seeded by the trainer).

        Args:
            x: raw data, shape ``(N, *shape)``.

        Returns:
            ``y`` of shape ``(N, *shape)``.
        """
        if self.kind == "binary" and self.binarize == "dynamic":
            x = self._check(x, "x", intensities=True)
            return torch.bernoulli(x, generator=generator)
        if self.kind == "discrete" and self.dequantize:
            x = self._check(x, "x")
            return self._map(x, self._noise(x, generator))[0]
        return self.forward(x)[0]

    def eval(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        r"""Evaluation inputs and their log-Jacobians, reproducible given ``generator``.

        Discrete data are dequantized with noise from ``generator``; binary data with
        ``binarize="dynamic"`` are Bernoulli draws from ``generator`` (an identity on data that
        are already 0/1, such as the fixed-binarized validation and test splits).
        ``generator=None`` means a fresh ``torch.Generator`` seeded with 0: pass one generator
        through a whole evaluation pass so that successive batches get independent noise.

        Args:
            x: raw data, shape ``(N, *shape)``.

        Returns:
            ``y`` of shape ``(N, *shape)`` and ``ladj`` of shape ``(N,)``, the log-Jacobian
            of the map from the :math:`[0, 1]`-scaled (dequantized) data to ``y``.
        """
        needs_noise = (self.kind == "discrete" and self.dequantize) or self.binarize == "dynamic"
        if needs_noise and generator is None:
            device = x.device if isinstance(x, Tensor) else "cpu"
            generator = torch.Generator(device=device).manual_seed(0)
        if self.kind == "binary" and self.binarize == "dynamic":
            x = self._check(x, "x", intensities=True)
            return torch.bernoulli(x, generator=generator), x.new_zeros(x.shape[0])
        if self.kind == "discrete" and self.dequantize:
            x = self._check(x, "x")
            return self._map(x, self._noise(x, generator))
        return self.forward(x)

    def inverse(self, y: Tensor) -> Tensor:
        r"""Map model-space values (e.g. samples) back to the raw data space.

        Discrete data are floored to the integer bin :math:`\lfloor u L \rfloor` and clamped to
        :math:`0 \dots L-1`; binary values are returned unchanged.

        Args:
            y: shape ``(N, *shape)``.

        Returns:
            ``x`` of shape ``(N, *shape)``.
        """
        y = check_event(y, "y", self.shape, finite=False)
        if self.kind == "continuous":
            if self.mean is None:
                return y
            return y * self.std.to(y) + self.mean.to(y)
        if self.kind == "binary":
            return y
        if not self.dequantize:
            return torch.clamp(torch.round(y * (self.levels - 1)), 0, self.levels - 1)
        u = y
        if self.logit is not None:
            u = (torch.sigmoid(y) - self.logit) / (1.0 - 2.0 * self.logit)
        return torch.clamp(torch.floor(u * self.levels), 0, self.levels - 1)

    def intensities(self, x: Tensor) -> Tensor:
        r"""Raw images as intensities in :math:`[0, 1]`: ``x / (levels - 1)`` for discrete
        data, unchanged for binary data (0/1 values or pixel probabilities).

        Example:
            >>> Preprocessor((2,), "discrete", levels=17).intensities(torch.tensor([[0.0, 16.0]]))
            tensor([[0., 1.]])
        """
        if self.kind == "discrete":
            return x / (self.levels - 1)
        if self.kind == "binary":
            return x
        raise ValueError(f"x: images have discrete or binary values; these data are {self.kind!r}")

    # ---------------------------------------------------------------- likelihoods
    def log_likelihood(self, log_p: Tensor, ladj: Tensor) -> Tensor:
        r"""Per-example log-likelihoods of the raw data from the model's, ``(N,) -> (N,)``.

        ``log_p`` is :math:`\log p_Y(y)` (or an estimate or bound of it) of the model inputs
        ``y`` that :meth:`eval` returned with ``ladj``. This is the one place where model space
        becomes data space:

        .. math::
            \ell(x) = \log p_Y(y) + \log\lvert\det J\rvert
            - [\text{dequantized}]\, D \log L

        * continuous: the log-density of the raw data;
        * discrete, dequantized: the log-density of the dequantized data on the
          :math:`[0, 1]`-scaled grid, corrected by the bin volume :math:`L^{-D}`, a lower bound
          on the discrete :math:`\log P(x)` in expectation (Theis et al. 2016);
        * discrete on the grid (``dequantize=False``) and binary: the model's log-probability
          of the data itself.

        Example:
            >>> import torch
            >>> p = Preprocessor((3,), "discrete", levels=256)
            >>> p.log_likelihood(torch.zeros(1), torch.zeros(1)) / (-3 * math.log(2))
            tensor([8.])
        """
        for name, t in (("log_p", log_p), ("ladj", ladj)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
            if t.dim() != 1:
                raise ValueError(f"{name}: expected shape (N,), got {tuple(t.shape)}")
        if log_p.shape != ladj.shape:
            raise ValueError(
                f"ladj: expected the shape of log_p {tuple(log_p.shape)}, got {tuple(ladj.shape)}"
            )
        out = log_p + ladj.to(log_p)
        if self.kind == "discrete" and self.dequantize:
            out = out - self.dims * math.log(self.levels)
        return out

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-serialisable description, inverted by :meth:`from_dict`."""
        return {
            "version": _FORMAT_VERSION,
            "shape": list(self.shape),
            "kind": self.kind,
            "levels": self.levels,
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
            "logit": self.logit,
            "binarize": self.binarize,
            "dequantize": self.dequantize,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        r"""Rebuild a preprocessor from :meth:`to_dict` output (e.g. a run's ``config.json``)."""
        if not isinstance(d, dict):
            raise TypeError(f"d: expected a dict, got {type(d).__name__}")
        known = {
            "version",
            "shape",
            "kind",
            "levels",
            "mean",
            "std",
            "logit",
            "binarize",
            "dequantize",
        }
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"d: unknown keys {unknown}; expected a subset of {sorted(known)}")
        if d.get("version", _FORMAT_VERSION) != _FORMAT_VERSION:
            raise ValueError(f"d['version']: expected {_FORMAT_VERSION}, got {d['version']!r}")
        if "shape" not in d:
            raise ValueError("d: missing the 'shape' key")
        return cls(
            tuple(d["shape"]),
            d.get("kind", "continuous"),
            levels=d.get("levels"),
            mean=d.get("mean"),
            std=d.get("std"),
            logit=d.get("logit"),
            binarize=d.get("binarize"),
            dequantize=d.get("dequantize", True),
        )


def fit_standardizer(x_train: Tensor) -> Preprocessor:
    r"""A continuous :class:`Preprocessor` standardising with the mean and (population) standard
    deviation of ``x_train`` ``(N, *shape)``: :math:`y = (x - \mu)/\sigma`.

    Example:
        >>> import torch
        >>> p = fit_standardizer(torch.tensor([[0.0], [2.0]]))
        >>> p.eval(torch.tensor([[2.0]]))[0].tolist()
        [[1.0]]
    """
    if not isinstance(x_train, Tensor):
        raise TypeError(f"x_train: expected a torch.Tensor, got {type(x_train).__name__}")
    if x_train.dim() < 2 or x_train.shape[0] < 2:
        raise ValueError(
            f"x_train: expected shape (N, ...) with N >= 2, got {tuple(x_train.shape)}"
        )
    x = x_train.detach().double()
    std = x.std(dim=0, unbiased=False)
    flat = std.reshape(-1)
    constant = torch.nonzero(flat <= 0).reshape(-1).tolist()
    if constant:
        raise ValueError(
            f"x_train: {len(constant)} feature(s) are constant on the training split (flat "
            f"indices {constant[:10]}); drop them or pass standardize=False"
        )
    return Preprocessor(tuple(x.shape[1:]), "continuous", mean=x.mean(dim=0), std=std)


_MEANING = {
    "continuous": (
        "nll: mean negative log-density of the raw data in nats per example, -log p_X(x) = "
        "-log p_Y(y) - log|det dy/dx|, with its standard error over the examples."
    ),
    "discrete": (
        "nll: upper bound on the discrete negative log-probability in nats per example, "
        "E_v[-log p_U((x + v)/L)] + D log L, where p_U is the model's density on the "
        "[0, 1]-scaled dequantized data (Theis et al. 2016); bpd = nll / (D ln 2). One "
        "dequantization draw per example; standard errors are over examples."
    ),
    "grid": (
        "nll: negative log-probability of the discrete data in nats per example, as the model "
        "gives it on the grid i / (L - 1) (a bound if the model's is one, e.g. an ELBO or "
        "IWAE); bpd = nll / (D ln 2)."
    ),
    "binary": (
        "nll: negative log-probability of the binary data in nats per example (a bound if "
        "the model's log_prob is one, e.g. an ELBO or IWAE); bpd = nll / (D ln 2)."
    ),
}


def nll_to_report(nll_model: Tensor, ladj: Tensor, dataset: Any) -> dict[str, Any]:
    r"""Summarise per-example model-space NLLs as data-space numbers worth reporting.

    ``nll_model`` is :math:`-\log p_Y(y)` per example (``-model.log_prob(y)``, shape ``(N,)``)
    and ``ladj`` the log-Jacobians returned by :meth:`Preprocessor.eval` for the same ``y``.
    ``dataset`` is a :class:`~tractable.data.Dataset` or a :class:`Preprocessor`.

    With :math:`\ell_X = \ell_Y - \log|\det J|` the NLL before preprocessing (through
    :meth:`Preprocessor.log_likelihood`, the one definition of the data-space likelihood):

    * continuous: ``nll`` is :math:`\operatorname{mean}(\ell_X)` in nats (no ``bpd``);
    * discrete with :math:`L` levels: ``nll`` is
      :math:`\operatorname{mean}(\ell_X) + D \log L`, an upper bound on the discrete NLL
      :math:`-\log P(x)`, and ``bpd`` is ``nll`` :math:`/(D \ln 2)`; a uniform density on
      :math:`[0, 1]^D` gives exactly :math:`\log_2 L` bits/dim;
    * binary, and discrete on the grid (``dequantize=False``): ``nll`` is
      :math:`\operatorname{mean}(\ell_Y)` and ``bpd`` is ``nll`` :math:`/(D \ln 2)`.

    Returns:
        a dict with ``nll``, ``nll_se`` (standard error over examples; ``None``, with an
        :class:`~tractable.checks.UndefinedStandardErrorWarning`, for a single example), ``bpd``,
        ``bpd_se`` (both ``None`` for continuous data; ``bpd_se`` is ``None`` whenever
        ``nll_se`` is), ``nll_model`` (mean model-space NLL), ``n``, ``dims``,
        ``kind``, ``levels`` and ``meaning`` (the sentence above, for the record).

    Example:
        >>> import torch
        >>> p = Preprocessor((3,), "discrete", levels=256)
        >>> r = nll_to_report(torch.zeros(4), torch.zeros(4), p)  # uniform density on [0,1]^3
        >>> r["bpd"]
        8.0
    """
    prep = dataset if isinstance(dataset, Preprocessor) else getattr(dataset, "preprocess", None)
    if not isinstance(prep, Preprocessor):
        raise TypeError(
            f"dataset: expected a Dataset or a Preprocessor, got {type(dataset).__name__}"
        )
    if not isinstance(nll_model, Tensor):
        raise TypeError(f"nll_model: expected a torch.Tensor, got {type(nll_model).__name__}")
    if nll_model.dim() != 1:
        raise ValueError(f"nll_model: expected shape (N,), got {tuple(nll_model.shape)}")
    if not isinstance(ladj, Tensor):
        raise TypeError(f"ladj: expected a torch.Tensor, got {type(ladj).__name__}")
    nll_x = -prep.log_likelihood(-nll_model.detach().double(), ladj.detach().double())
    dims = prep.dims
    nll, nll_se = mean_and_se(nll_x)
    bpd = bpd_se = None
    if prep.kind != "continuous":
        bpd = float(bits_per_dim(nll, dims))
        bpd_se = None if nll_se is None else nll_se / (dims * math.log(2))
    return {
        "nll": nll,
        "nll_se": nll_se,
        "bpd": bpd,
        "bpd_se": bpd_se,
        "nll_model": float(nll_model.detach().double().mean()),
        "n": int(nll_x.numel()),
        "dims": dims,
        "kind": prep.kind,
        "levels": prep.levels,
        "meaning": _MEANING[
            "grid" if prep.kind == "discrete" and not prep.dequantize else prep.kind
        ],
    }
