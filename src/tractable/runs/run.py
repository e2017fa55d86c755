r"""A trained run, loaded from its directory with one call: :class:`Run`.

``Run.load(dir)`` rebuilds the model from ``config.json`` and ``model.safetensors`` and the
preprocessing from ``config.json``; the dataset is loaded only when something needs it (a
split's likelihood, sample metrics), so sampling and plotting need no data on disk. The command
line, the reports and anomaly scoring all go through a :class:`Run`; nothing here asks which
family the model belongs to, only what the protocol (:mod:`tractable.protocol`) offers.

Example:
    >>> import tempfile
    >>> from tractable.runs import Run, train_run
    >>> out = tempfile.mkdtemp() + "/run"
    >>> _ = train_run(model="maf", data="moons", steps=5, n=512, out=out, progress=False,
    ...               options={"hidden": [16], "transforms": 2}, plots=False)
    >>> run = Run.load(out)
    >>> run.sample(7).shape, run.estimate("val")["val_estimator"]
    (torch.Size([7, 2]), 'exact')
"""

from __future__ import annotations

import math
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import data as tdata
from ..protocol import check_method
from ..registry import Entry, get_entry
from ..train import atomic_write_json, load_latest_checkpoint, load_model, read_json
from ..train.checkpoint import latest_step
from ..train.serialization import check_matches, inside
from .limits import build_checked
from .setup import EVAL_SEED, Setup, from_config, stored_preprocess


def read_run_config(path: Path) -> dict[str, Any]:
    r"""A run's ``config.json``, checked to hold what rebuilding the run needs (one line
    naming what is missing otherwise)."""
    file = path / "config.json"
    if not file.is_file():
        hint = (
            f"; it was stopped before writing one: start it with 'tractable train --out {path}'"
            if path.is_dir() and (path / ".lock").exists()
            else ""
        )
        raise FileNotFoundError(f"run_dir: {str(path)!r} holds no run (no config.json){hint}")
    config = read_json(inside(file, path, "config.json"))
    if not isinstance(config, dict):
        raise ValueError(f"run_dir: {str(file)!r} is not a JSON object")
    for key in ("model", "data"):
        if not isinstance(config.get(key), dict):
            raise ValueError(
                f"run_dir: {str(file)!r} has no {key!r} section (it is damaged or not a "
                "tractable run)"
            )
    model = config["model"]
    if not isinstance(model.get("model"), str) or not isinstance(model.get("shape"), list):
        raise ValueError(f"run_dir: {str(file)!r}: 'model' needs a model name and a shape")
    if not isinstance(config["data"].get("dataset"), dict):
        raise ValueError(f"run_dir: {str(file)!r}: 'data' has no 'dataset' description")
    return config


def json_ready(values: dict[str, Any], where: str = "metrics.json") -> dict[str, Any]:
    r"""``values`` with every non-finite float replaced by ``None`` (strict JSON has no NaN),
    with a warning naming them: e.g. the standard error of a split of one row is undefined."""
    bad: list[str] = []

    def clean(value: Any, key: str) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            bad.append(key)
            return None
        if isinstance(value, dict):
            return {k: clean(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v, f"{key}[{i}]") for i, v in enumerate(value)]
        return value

    out = clean(values, "")
    if bad:
        warnings.warn(
            f"{', '.join(bad)}: not defined (NaN or infinite, e.g. the standard error of a "
            f"split of one row); recorded as null in {where}",
            stacklevel=3,
        )
    return out


def count_parameters(model: nn.Module) -> int:
    r"""The number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class Run:
    r"""A run directory with its model, preprocessing, config and (on demand) dataset.

    Args:
        run_dir: the run's directory.
        config: its ``config.json``.
        model: the model (built from ``config`` and in ``eval()`` mode).
        setup: the data set-up, when the caller has it already (a run just trained).
    """

    def __init__(
        self,
        run_dir: str | Path,
        config: dict[str, Any],
        model: nn.Module,
        setup: Setup | None = None,
    ) -> None:
        self.dir = Path(run_dir)
        self.note: str | None = None
        self.config = config
        self.model = model
        self.preprocess: tdata.Preprocessor = (
            setup.preprocess if setup is not None else stored_preprocess(config)
        )
        if setup is not None:
            self.__dict__["setup"] = setup

    @classmethod
    def load(cls, run_dir: str | Path, weights: str = "model") -> Run:
        r"""Load the run in ``run_dir`` with its final (``weights="model"``) or best-validation
        (``"best"``) weights.

        A run that has not finished (stopped, killed or diverged) has no final weights yet; it
        is then loaded with the weights of its newest complete checkpoint, with a warning that
        says so (``Run.note``)."""
        path = Path(run_dir)
        config = read_run_config(path)
        if weights not in ("model", "best"):
            raise ValueError(f"weights: expected 'model' or 'best', got {weights!r}")
        if (path / f"{weights}.safetensors").is_file() or (
            path / f"{weights}.safetensors"
        ).is_symlink():
            return cls(path, config, load_model(path, build_checked, weights=weights))
        step = latest_step(path)
        if step is None:
            raise FileNotFoundError(
                f"run_dir: {str(path)!r} has no weights yet (it stopped before its first "
                f"checkpoint); 'tractable train --resume {path}' starts it again"
            )
        step, saved, _ = load_latest_checkpoint(path)
        if weights not in saved:
            raise FileNotFoundError(
                f"run_dir: {str(path)!r} has no {weights}.safetensors and its checkpoint of step "
                f"{step} holds no {weights} weights"
            )
        model = build_checked(config["model"])
        check_matches(model, saved[weights], f"{path}/checkpoints (step {step})")
        model.load_state_dict(saved[weights])
        run = cls(path, config, model.eval())
        run.note = (
            f"{str(path)!r} has not finished (no {weights}.safetensors): using the {weights} "
            f"weights of its checkpoint at step {step}; 'tractable train --resume {path}' "
            "finishes it"
        )
        warnings.warn(run.note, stacklevel=2)
        return run

    # -- what the run is ----------------------------------------------------------------------
    @property
    def entry(self) -> Entry:
        return get_entry(self.config["model"]["model"])

    @property
    def name(self) -> str:
        return self.config["model"]["model"]

    @property
    def shape(self) -> tuple[int, ...]:
        r"""The event shape the model sees."""
        return tuple(self.config["model"]["shape"])

    @property
    def data_shape(self) -> tuple[int, ...]:
        r"""The event shape of the raw data."""
        return tuple(self.preprocess.shape)

    @property
    def data_name(self) -> str:
        return self.config["data"]["dataset"].get("name", "")

    @property
    def conditional(self) -> bool:
        return bool(self.config["data"].get("conditional"))

    @property
    def classes(self) -> int:
        return int(self.config["model"].get("context", 0)) if self.conditional else 0

    @property
    def likelihood(self) -> str:
        return getattr(type(self.model), "likelihood", "none")

    @cached_property
    def setup(self) -> Setup:
        r"""The data set-up (loads the dataset from the description in ``config.json``)."""
        return from_config(self.config)

    @property
    def dataset(self) -> tdata.Dataset:
        return self.setup.dataset

    def class_log_prior(self) -> Tensor:
        r""":math:`\log p(c)`, the training class frequencies of a class-conditional run."""
        counts = self.config["data"].get("class_counts")
        if counts is None:  # runs written before the counts were stored
            labels = self.dataset.train_labels
            counts = torch.bincount(labels, minlength=self.classes).tolist()
        c = torch.tensor(counts, dtype=torch.float64)
        return torch.log(c / c.sum())

    # -- likelihoods --------------------------------------------------------------------------
    def _model_estimate(
        self, y: Tensor, c: Tensor | None, method: str | None, k: int | None, batch_size: int
    ) -> tuple[Tensor, Any]:
        values, last = [], None
        for start in range(0, y.shape[0], batch_size):
            cc = None if c is None else c[start : start + batch_size]
            last = self.model.estimate(y[start : start + batch_size], cc, method=method, k=k)
            values.append(last.values.detach().double())
        return torch.cat(values), last

    def model_log_likelihood(
        self,
        y: Tensor,
        *,
        labels: Tensor | None = None,
        method: str | None = None,
        k: int | None = None,
        batch_size: int = 1024,
        seed: int = EVAL_SEED,
    ) -> tuple[Tensor, str, dict[str, Any]]:
        r"""Model-space log-likelihoods ``(N,)`` of model inputs ``y``, their kind and facts
        about the estimator (``method``, ``k``, mean ESS). A class-conditional run gives
        :math:`\log \sum_c p(c)\, p(y \mid c)` (the training class frequencies as
        :math:`p(c)`), or :math:`\log p(y \mid c)` given ``labels``."""
        if self.likelihood == "none":
            raise ValueError(
                f"estimator: a {self.entry.family} has no likelihood; compare it with sample "
                "metrics ('tractable eval RUN --metrics fid,prd,modes')"
            )
        self.model.eval()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            if not self.conditional:
                values, est = self._model_estimate(y, None, method, k, batch_size)
            elif labels is not None:
                c = torch.nn.functional.one_hot(labels, self.classes).to(y.dtype)
                values, est = self._model_estimate(y, c, method, k, batch_size)
            else:
                eye = torch.eye(self.classes, dtype=y.dtype)
                parts = []
                for j in range(self.classes):
                    c = eye[j].expand(y.shape[0], self.classes)
                    part, est = self._model_estimate(y, c, method, k, batch_size)
                    parts.append(part)
                values = torch.logsumexp(torch.stack(parts, 1) + self.class_log_prior(), dim=1)
        info: dict[str, Any] = {"estimator": check_method(self.model, method)}
        if est is not None and est.k is not None:
            info["k"] = est.k
        if est is not None and est.ess is not None:
            info["ess_mean"] = float(est.ess.double().mean())
        return values, est.kind, info

    def log_likelihood(
        self,
        x: Tensor,
        *,
        labels: Tensor | None = None,
        method: str | None = None,
        k: int | None = None,
        batch_size: int = 1024,
        seed: int = EVAL_SEED,
    ) -> tuple[Tensor, str]:
        r"""Per-example log-likelihoods ``(N,)`` of raw data ``x`` ``(N, *data_shape)`` in the
        units of the run's reported NLL, and their kind (``exact``, ``bound``, ``estimate``).

        .. math:: \ell(x) = \log p_Y(g(x)) + \log\lvert\det J_g(x)\rvert
                  - [\text{dequantized}]\, D \log L

        with :math:`g` the run's preprocessing (:meth:`tractable.data.Preprocessor.log_likelihood`,
        dequantized with a generator seeded by ``seed``), so that
        ``-mean(ℓ)`` over a split is that split's NLL in ``metrics.json``.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        x = x.to(torch.get_default_dtype()) if not x.is_floating_point() else x
        y, ladj = self.preprocess.eval(x, torch.Generator().manual_seed(seed))
        y = y.reshape(y.shape[0], *self.shape)
        log_p, kind, _ = self.model_log_likelihood(
            y, labels=labels, method=method, k=k, batch_size=batch_size, seed=seed
        )
        return self.preprocess.log_likelihood(log_p, ladj.double()), kind

    def estimate(
        self,
        split: str = "test",
        *,
        method: str | None = None,
        k: int | None = None,
        batch_size: int = 1024,
        rows: int | None = None,
    ) -> dict[str, Any]:
        r"""NLL (nats per example, data space) of ``split`` with its standard error, bits/dim
        for discrete and binary data, and the estimator used, as ``metrics.json`` entries
        prefixed with the split. A class-conditional run reports the marginal
        :math:`-\log p(x)` as ``<split>_nll`` and :math:`-\log p(x \mid y)` (true labels) as
        ``<split>_nll_conditional``.

        ``rows``: evaluate a random subset of this many examples of the split (drawn without
        replacement with the evaluation seed, the same rows every time), for estimators too
        costly for a whole split (an ODE likelihood of images); the standard error is that of
        the subset's mean, so it covers the choice of rows, and ``<split>_rows`` records it."""
        s = self.setup
        y, ladj = s.model_space(split)
        labels = self.dataset.labels(split) if self.conditional else None
        out: dict[str, Any] = {}
        if rows is not None:
            if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
                raise ValueError(f"rows: expected an int >= 1, got {rows!r}")
            if rows < y.shape[0]:
                g = torch.Generator().manual_seed(EVAL_SEED)
                keep = torch.randperm(y.shape[0], generator=g)[:rows].sort().values
                out[f"{split}_rows_of"] = y.shape[0]
                y, ladj = y[keep], ladj[keep]
                labels = None if labels is None else labels[keep]
            out[f"{split}_rows"] = y.shape[0]
        variants = [("", None)]
        if self.conditional:
            variants.append(("_conditional", labels))
        for suffix, labels in variants:
            log_p, kind, info = self.model_log_likelihood(
                y, labels=labels, method=method, k=k, batch_size=batch_size
            )
            report = tdata.nll_to_report(-log_p, ladj.double(), self.preprocess)
            out[f"{split}_nll{suffix}"] = report["nll"]
            out[f"{split}_nll{suffix}_se"] = report["nll_se"]
            if report["bpd"] is not None:
                out[f"{split}_bpd{suffix}"] = report["bpd"]
                out[f"{split}_bpd{suffix}_se"] = report["bpd_se"]
            if not suffix:
                out[f"{split}_estimator"] = info["estimator"]
                out[f"{split}_estimate_kind"] = kind
                for key in ("k", "ess_mean"):
                    if key in info:
                        out[f"{split}_{key}"] = info[key]
        return out

    def diagnostics(self, split: str = "test") -> dict[str, Any]:
        r"""The model's own figures on ``split`` in model space, from its ``diagnostics(y)``
        when it has one (a VAE: active units, KL per latent dimension), with the evaluation
        seed; empty for a model without."""
        diagnose = getattr(self.model, "diagnostics", None)
        if not callable(diagnose):
            return {}
        y, _ = self.setup.model_space(split)
        self.model.eval()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(EVAL_SEED)
            return dict(diagnose(y))

    def configure_sampling(self, options: dict[str, Any]) -> dict[str, Any]:
        r"""Set the model's sampling settings that leave its weights alone (a DDPM's
        ``sampler``, ``sample_steps``, ``eta``), as the model declares them in
        ``sampling_options``; returns what was set. A model without such settings refuses
        any."""
        allowed = tuple(getattr(self.model, "sampling_options", ()))
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(
                f"sample options: {self.entry.family} runs take "
                f"{', '.join(allowed) if allowed else 'none'}; got {', '.join(unknown)}"
            )
        if options:
            self.model.configure_sampling(**options)
        return dict(options)

    # -- samples ------------------------------------------------------------------------------
    def sample(
        self, n: int, *, temperature: float = 1.0, seed: int = 0, per_class: bool = True
    ) -> Tensor:
        r"""Samples in the raw data space, ``(n, *data_shape)``.

        A class-conditional run draws ``n`` per class (``n * classes`` rows, class by class)
        with ``per_class=True``, or exactly ``n`` in a seeded random order of classes
        (``ceil(n / classes)`` per class) with ``per_class=False``, as sample metrics want.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected an int >= 1, got {n!r}")
        self.model.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.conditional:
                per = n if per_class else math.ceil(n / self.classes)
                eye = torch.eye(self.classes, dtype=torch.get_default_dtype())
                y = self.model.sample(per, context=eye, temperature=temperature)
                y = y.reshape(-1, *y.shape[2:])
            else:
                y = self.model.sample(n, temperature=temperature)
        x = self.preprocess.inverse(y.detach().reshape(y.shape[0], *self.data_shape))
        if self.conditional and not per_class:
            g = torch.Generator().manual_seed(seed)
            x = x[torch.randperm(x.shape[0], generator=g)[:n]]
        return x

    # -- bookkeeping --------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        r"""The run's ``metrics.json`` (empty before the run has finished)."""
        path = self.dir / "metrics.json"
        return read_json(path) if path.is_file() else {}

    def record(self, update: dict[str, Any]) -> Path:
        r"""Merge ``update`` into ``metrics.json`` (atomically)."""
        metrics = self.metrics()
        metrics.update(json_ready(update))
        path = self.dir / "metrics.json"
        atomic_write_json(path, metrics)
        return path

    def evaluate(self, metrics: Any, **options: Any) -> dict[str, Any]:
        r"""Sample-based ``metrics`` of this run (see
        :func:`tractable.evaluation.evaluate_samples`), stored under ``"sample_metrics"``."""
        from .sample_eval import evaluate_run

        return evaluate_run(self, metrics, **options)

    def plot(self) -> list[Path]:
        r"""Write the run's plots (see :func:`tractable.runs.figures.plot_run`)."""
        from .figures import plot_run

        return plot_run(self)

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, model={self.name!r}, data={self.data_name!r})"


__all__ = ["Run", "count_parameters", "json_ready", "read_run_config"]
