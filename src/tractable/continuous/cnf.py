r"""The continuous normalizing flow (CNF) transform, solved with torchdiffeq.

A CNF maps data to noise by integrating an ODE (Chen et al. 2018, "Neural Ordinary Differential
Equations"; Grathwohl et al. 2019, "FFJORD"):

.. math:: \frac{\mathrm{d}z}{\mathrm{d}t} = f(z(t), t, c), \qquad z(0) = x, \quad z(T) = z,

and by the instantaneous change of variables :math:`\frac{\mathrm{d}}{\mathrm{d}t}
\log p(z(t)) = -\operatorname{tr}(\partial f / \partial z)` (Liouville), so that

.. math:: \log \left|\det \frac{\partial z}{\partial x}\right|
          = \int_0^T \operatorname{tr}\frac{\partial f}{\partial z}(z(t), t, c)\,\mathrm{d}t .

The solve runs in normalized time :math:`s = t / T \in [0, 1]` with the field
:math:`T f(z, sT, c)`, which lets :math:`T` be learned. The inverse runs the same ODE from
:math:`s = 1` back to :math:`s = 0`, and its log-determinant is the negative integral.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..checks import check_positive_int, validation_enabled
from ..transforms.base import Transform
from .divergence import NOISES, exact_divergence, hutchinson_divergence, hutchinson_noise

ADAPTIVE_SOLVERS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
FIXED_SOLVERS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams")
DIVERGENCES = ("auto", "exact", "hutchinson")
# "auto" takes the exact trace up to this many features and Hutchinson's estimate above it
EXACT_MAX_FEATURES = 8
REGULARIZERS = ("kinetic", "jacobian")
# adjoint="auto" backpropagates directly while the expected stored activations fit this budget
DIRECT_BUDGET_MB = 512.0
# the prior for the function evaluations of a training solve before one has been seen: an
# adaptive solve's count is unknown in advance; fixed-step ones make at most 4 per step (rk4),
# implicit Adams at most 1 + its 4 corrector iterations
ADAPTIVE_NFE_PRIOR = 128
FIXED_NFE_PER_STEP = {"implicit_adams": 5}


def _positive_float(value: object, name: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and math.isfinite(value)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite float {bound}, got {value}")
    return float(value)


def _choice(value: object, name: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name}: expected one of {options}, got {value!r}")
    return str(value)


class CNF(Transform):
    r"""A continuous normalizing flow: data to noise by solving an ODE over :math:`[0, T]`.

    ``forward(x, context)`` returns ``(z, ladj)`` with
    :math:`\mathrm{ladj} = \int_0^T \operatorname{tr}(\partial f/\partial z)\,\mathrm{d}t`;
    ``inverse(z, context)`` integrates backwards and returns ``(x, -ladj)`` (up to the solver's
    error). The trace is exact (``D`` vector-Jacobian products per evaluation) or Hutchinson's
    estimate :math:`\varepsilon^\top J \varepsilon` with one probe :math:`\varepsilon` fixed for
    the whole solve (Grathwohl et al. 2019). By default (``divergence="auto"``) training uses
    the exact trace when :math:`D \le 8` and Hutchinson's estimate above, and evaluation
    (``self.training == False``) the exact trace, so reported likelihoods are exact up to the
    solver's tolerance. At small :math:`D` the exact trace costs little more than one probe
    (its :math:`D` products run as one batched call) and removes the estimator's variance from
    the training loss.

    Gradients (``adjoint="auto"`` by default): direct backpropagation through the solver gives
    the same gradients as the adjoint method (Chen et al. 2018) up to the solver's tolerance,
    without the backward solve (on 8gaussians, 64-64-64 field, batch 256: 1.4x less time per
    step), but keeps every evaluation's activations until the backward pass. ``"auto"`` takes
    it when the estimate

    .. math:: M = N \cdot \mathrm{NFE} \cdot b

    fits ``direct_budget_mb``, with :math:`N` the batch, :math:`b` the bytes one evaluation
    stores per row for the backward pass (measured once per input shape, dtype and estimator
    by counting the tensors autograd saves in one evaluation on a few rows, parameters
    excluded, plus the solver's own copies of the state) and :math:`\mathrm{NFE}` twice the
    evaluations of this CNF's previous training solve (the margin covers a growing count;
    before the first: 4 per step for fixed-step solvers, 128 for adaptive ones). Without
    gradients (``torch.no_grad``) every mode solves once, without the adjoint.

    RNODE regularisation (Finlay et al. 2020, "How to train your neural ODE"): with
    ``kinetic > 0`` or ``jacobian > 0``, a forward pass in training mode also integrates

    .. math:: \int_0^T \lVert f \rVert^2 \,\mathrm{d}t, \qquad
              \int_0^T \lVert \partial f / \partial z \rVert_F^2 \,\mathrm{d}t

    as extra ODE states (the Frobenius norm by the same estimator as the trace) and stores their
    batch means in ``self.regularization`` (``{"kinetic": ..., "jacobian": ...}``); the weights
    are applied by :func:`~tractable.continuous.rnode_penalty`.

    Args:
        dynamics: the field, called as ``dynamics(t, z, context)`` with ``t`` a scalar tensor,
            ``z`` ``(N, D)`` and ``context`` ``(N, C)`` or ``None``; it must return ``(N, D)``
            and treat rows independently (the exact trace relies on it).
        T: the length of the time span.
        learn_T: learn :math:`\log T` as a parameter.
        solver: a torchdiffeq method, adaptive (``"dopri5"``, ``"dopri8"``, ``"bosh3"``,
            ``"fehlberg2"``, ``"adaptive_heun"``) or fixed-step (``"euler"``, ``"midpoint"``,
            ``"heun2"``, ``"heun3"``, ``"rk4"``, ``"explicit_adams"``, ``"implicit_adams"``).
        atol, rtol: the adaptive solver's absolute and relative tolerances.
        train_atol, train_rtol: the tolerances in training mode (``None``: ``atol``, ``rtol``).
            Evaluation keeps ``atol``/``rtol``, so reported likelihoods stay as accurate; on
            8gaussians (FFJORD, 64-64-64, batch 256, the same batches) training at ``1e-3``
            instead of ``1e-5`` gave the same test NLL to 0.001 nats over 600 steps and to
            0.003 over 3,000, at 0.65-0.73x the time per step (``BENCHMARKS.md``, CNF
            section). :func:`~tractable.continuous.FFJORD` defaults to ``1e-3``; a bare
            ``CNF`` trains at ``atol``/``rtol`` unless told otherwise.
        steps: the number of steps over the time span; required by fixed-step solvers, not
            allowed for adaptive ones.
        adjoint: ``True``: backpropagate with the adjoint method (``torchdiffeq.odeint_adjoint``,
            memory constant in the number of evaluations, but a second, backward solve);
            ``False``: backpropagate directly through the solver's operations (no second solve,
            memory linear in the evaluations); ``"auto"``: directly when
            :meth:`direct_memory` of the solve fits ``direct_budget_mb``, else the adjoint.
        direct_budget_mb: the memory (MiB) that ``adjoint="auto"`` lets direct backpropagation
            keep for one solve.
        divergence: the trace estimator in training mode: ``"exact"``, ``"hutchinson"``, or
            ``"auto"`` (exact for ``D <= 8``, Hutchinson above).
        eval_divergence: the estimator in evaluation mode (same choices); ``None`` means
            ``divergence``.
        noise: Hutchinson's probe, ``"gaussian"`` or ``"rademacher"``.
        kinetic: the weight of the kinetic-energy penalty (0 switches it off).
        jacobian: the weight of the Jacobian Frobenius-norm penalty (0 switches it off).
        options: extra options passed to the torchdiffeq solver (e.g. ``max_num_steps``).

    Shapes: ``x`` ``(N, D)``, ``context`` ``(N, C)`` or ``None``; ``z`` ``(N, D)``, ``ladj``
    ``(N,)``.

    Example:
        >>> import torch
        >>> from tractable.continuous import CNF
        >>> from tractable.nn import ODEMLP
        >>> cnf = CNF(ODEMLP(2, hidden=(8,)), solver="rk4", steps=4).eval()
        >>> x = torch.randn(5, 2)
        >>> z, ladj = cnf(x)
        >>> x_back, ladj_inv = cnf.inverse(z)
        >>> bool((x_back - x).abs().max() < 1e-3), bool((ladj + ladj_inv).abs().max() < 1e-3)
        (True, True)
        >>> cnf.nfe()["forward"]
        32
    """

    def __init__(
        self,
        dynamics: nn.Module,
        *,
        T: float = 1.0,
        learn_T: bool = False,
        solver: str = "dopri5",
        atol: float = 1e-5,
        rtol: float = 1e-5,
        train_atol: float | None = None,
        train_rtol: float | None = None,
        steps: int | None = None,
        adjoint: bool | str = "auto",
        direct_budget_mb: float = DIRECT_BUDGET_MB,
        divergence: str = "auto",
        eval_divergence: str | None = "exact",
        noise: str = "gaussian",
        kinetic: float = 0.0,
        jacobian: float = 0.0,
        options: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(dynamics, nn.Module):
            raise TypeError(f"dynamics: expected an nn.Module, got {type(dynamics).__name__}")
        self.dynamics = dynamics
        log_T = torch.tensor(math.log(_positive_float(T, "T")))
        if learn_T:
            self.log_T = nn.Parameter(log_T)
        else:
            self.register_buffer("log_T", log_T)
        self.solver = _choice(solver, "solver", ADAPTIVE_SOLVERS + FIXED_SOLVERS)
        self.atol = _positive_float(atol, "atol")
        self.rtol = _positive_float(rtol, "rtol")
        self.train_atol = None if train_atol is None else _positive_float(train_atol, "train_atol")
        self.train_rtol = None if train_rtol is None else _positive_float(train_rtol, "train_rtol")
        self.options = dict(options or {})
        if steps is not None:
            if self.solver in ADAPTIVE_SOLVERS:
                raise ValueError(
                    f"steps: only for fixed-step solvers, got steps={steps} with adaptive "
                    f"solver {self.solver!r}"
                )
            self.options["step_size"] = 1.0 / check_positive_int(steps, "steps")
        elif self.solver in FIXED_SOLVERS and "step_size" not in self.options:
            raise ValueError(
                f"steps: required for the fixed-step solver {self.solver!r} (else it takes a "
                "single step over the whole span), got None"
            )
        self.steps = steps
        if not isinstance(adjoint, bool) and adjoint != "auto":
            raise TypeError(f"adjoint: expected a bool or 'auto', got {adjoint!r}")
        self.adjoint = adjoint
        self.direct_budget_mb = _positive_float(direct_budget_mb, "direct_budget_mb")
        # bytes stored per row and evaluation, by (row shape, dtype, device, estimator, terms)
        self._row_bytes: dict[tuple, float] = {}
        self._last_nfe: int | None = None
        self.divergence = _choice(divergence, "divergence", DIVERGENCES)
        self.eval_divergence = (
            self.divergence
            if eval_divergence is None
            else _choice(eval_divergence, "eval_divergence", DIVERGENCES)
        )
        self.noise = _choice(noise, "noise", NOISES)
        self.kinetic = _positive_float(kinetic, "kinetic", allow_zero=True)
        self.jacobian = _positive_float(jacobian, "jacobian", allow_zero=True)
        self.regularization: dict[str, Tensor] = {}
        self._nfe = {"forward": 0, "backward": 0}
        self._solving = False

    @property
    def T(self) -> Tensor:  # noqa: N802 (the paper's symbol)
        r"""The length of the time span (a scalar tensor; learnable with ``learn_T``)."""
        return self.log_T.exp()

    def nfe(self) -> dict[str, int]:
        r"""Function evaluations since the last :meth:`reset_nfe`: ``{"forward", "backward"}``.

        ``"forward"`` counts the evaluations of every solve (both directions); ``"backward"``
        those made outside a solve, i.e. by the adjoint method's backward solve (direct
        backpropagation evaluates nothing and leaves it at 0).
        """
        return dict(self._nfe)

    def reset_nfe(self) -> None:
        r"""Set both function-evaluation counters to zero."""
        self._nfe = {"forward": 0, "backward": 0}

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._integrate(x, context, reverse=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._integrate(z, context, reverse=True)

    # -- the solve ----------------------------------------------------------------------------
    def _integrate(self, x: Tensor, context: Tensor | None, reverse: bool) -> tuple[Tensor, Tensor]:
        name = "z" if reverse else "x"
        if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] == 0:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name}: expected a tensor of shape (N, D) with N >= 1, got {shape}")
        if context is not None and (context.dim() != 2 or context.shape[0] != x.shape[0]):
            raise ValueError(
                f"context: expected shape ({x.shape[0]}, C) to match {name}, got "
                f"{tuple(context.shape)}"
            )
        estimator = self.divergence if self.training else self.eval_divergence
        if estimator == "auto":
            estimator = "exact" if x[0].numel() <= EXACT_MAX_FEATURES else "hutchinson"
        regs = () if reverse or not self.training else self._active_regularizers()
        eps = hutchinson_noise(x, self.noise) if estimator == "hutchinson" else None
        n = x.shape[0]
        state = (x, x.new_zeros(n), *(x.new_zeros(n) for _ in regs))
        if context is not None:
            state = (*state, context)

        def field(s: Tensor, y: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            return self._field(s, y, estimator, eps, regs, context is not None)

        span = [1.0, 0.0] if reverse else [0.0, 1.0]
        s = torch.tensor(span, dtype=x.dtype, device=x.device)
        atol, rtol = self.atol, self.rtol
        if self.training:
            atol = atol if self.train_atol is None else self.train_atol
            rtol = rtol if self.train_rtol is None else self.train_rtol
        kwargs = dict(rtol=rtol, atol=atol, method=self.solver, options=self.options)
        # torchdiffeq imports scipy.integrate (0.4 s): import it on the first solve, not with
        # the package, so that every command that never solves an ODE starts that much sooner.
        from torchdiffeq import odeint, odeint_adjoint

        adjoint = self._use_adjoint(x, context, estimator, eps, regs)
        nfe_before = self._nfe["forward"]
        self._solving = True
        try:
            if adjoint:
                params = tuple(p for p in self.parameters() if p.requires_grad)
                out = odeint_adjoint(field, state, s, adjoint_params=params, **kwargs)
            else:
                out = odeint(field, state, s, **kwargs)
        except AssertionError as err:
            if "underflow in dt" in str(err):
                raise RuntimeError(
                    f"CNF: the adaptive solver {self.solver!r} could not meet atol={atol}, "
                    f"rtol={rtol} (step size underflow): the field is non-finite or too "
                    "stiff; check the inputs, loosen the tolerances or use a fixed-step solver"
                ) from err
            raise
        finally:
            self._solving = False
        if self.training and torch.is_grad_enabled():
            self._last_nfe = self._nfe["forward"] - nfe_before
        z, ladj = out[0][-1], out[1][-1]
        if validation_enabled() and not bool(torch.isfinite(z).all() & torch.isfinite(ladj).all()):
            raise RuntimeError(
                f"CNF: the ODE solve from {name} returned non-finite values (NaN or inf); the "
                "dynamics may be unstable or the input far outside the data"
            )
        if not reverse:
            self.regularization = {r: out[2 + k][-1].mean() for k, r in enumerate(regs)}
        return z, ladj

    # -- direct backpropagation or the adjoint ---------------------------------------------
    def direct_memory(self, x: Tensor, context: Tensor | None = None) -> float:
        r"""The estimated bytes direct backpropagation keeps for one solve from ``x`` in the
        current mode: :math:`N \cdot \mathrm{NFE} \cdot b` (see the class notes).

        Example:
            >>> import torch
            >>> from tractable.continuous import CNF
            >>> from tractable.nn import ODEMLP
            >>> cnf = CNF(ODEMLP(2, hidden=(8,)), solver="rk4", steps=4).train()
            >>> m = cnf.direct_memory(torch.randn(10, 2))
            >>> m == 2 * cnf.direct_memory(torch.randn(5, 2)) > 0
            True
        """
        estimator = self.divergence if self.training else self.eval_divergence
        if estimator == "auto":
            estimator = "exact" if x[0].numel() <= EXACT_MAX_FEATURES else "hutchinson"
        regs = self._active_regularizers() if self.training else ()
        eps = hutchinson_noise(x, self.noise) if estimator == "hutchinson" else None
        return self._direct_memory(x, context, estimator, eps, regs)

    def _expected_nfe(self) -> int:
        if self._last_nfe is not None:
            return 2 * self._last_nfe
        if self.solver in ADAPTIVE_SOLVERS:
            return ADAPTIVE_NFE_PRIOR
        steps = math.ceil(1.0 / float(self.options["step_size"]))
        return FIXED_NFE_PER_STEP.get(self.solver, 4) * steps

    def _direct_memory(
        self,
        x: Tensor,
        context: Tensor | None,
        estimator: str,
        eps: Tensor | None,
        regs: tuple[str, ...],
    ) -> float:
        key = (tuple(x.shape[1:]), x.dtype, x.device, estimator, regs, context is not None)
        if key not in self._row_bytes:
            self._row_bytes[key] = self._measure_row_bytes(x, context, estimator, eps, regs)
        return x.shape[0] * self._expected_nfe() * self._row_bytes[key]

    def _measure_row_bytes(
        self,
        x: Tensor,
        context: Tensor | None,
        estimator: str,
        eps: Tensor | None,
        regs: tuple[str, ...],
    ) -> float:
        r"""Bytes autograd saves per row in one evaluation of the augmented field (graph kept,
        as in direct backpropagation), measured on a few rows; parameters are not counted (they
        are stored once, not per evaluation), and the solver's own combinations of the state
        are counted as two more copies of it."""
        m = min(x.shape[0], 8)
        rows = x[:m].detach().clone().requires_grad_(True)
        state = (rows, rows.new_zeros(m), *(rows.new_zeros(m) for _ in regs))
        c = None
        if context is not None:
            c = context[:m].detach().clone()
            state = (*state, c)
        probe = None if eps is None else eps[:m]
        skip = {p.untyped_storage().data_ptr() for p in self.parameters()}
        skip |= {b.untyped_storage().data_ptr() for b in self.buffers()}
        seen: set[int] = set()
        total = [0]

        def pack(t: Tensor) -> Tensor:
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in skip and ptr not in seen:
                seen.add(ptr)
                total[0] += storage.nbytes()
            return t

        counts = dict(self._nfe)
        s = torch.zeros((), dtype=x.dtype, device=x.device)
        with torch.inference_mode(False), torch.enable_grad():
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                self._field(s, state, estimator, probe, regs, c is not None)
        self._nfe = counts
        state_bytes = sum(y[0].numel() * y.element_size() for y in state)
        return total[0] / m + 2 * state_bytes

    def _use_adjoint(
        self,
        x: Tensor,
        context: Tensor | None,
        estimator: str,
        eps: Tensor | None,
        regs: tuple[str, ...],
    ) -> bool:
        if self.adjoint != "auto":
            return bool(self.adjoint)
        if not torch.is_grad_enabled() or torch.is_inference_mode_enabled():
            return False
        memory = self._direct_memory(x, context, estimator, eps, regs)
        return memory > self.direct_budget_mb * 2**20

    def _active_regularizers(self) -> tuple[str, ...]:
        return tuple(r for r in REGULARIZERS if getattr(self, r) > 0)

    def _field(
        self,
        s: Tensor,
        y: tuple[Tensor, ...],
        estimator: str,
        eps: Tensor | None,
        regs: tuple[str, ...],
        has_context: bool,
    ) -> tuple[Tensor, ...]:
        r"""The augmented field in normalized time: :math:`T\,(f, \operatorname{tr} J,
        \lVert f\rVert^2, \lVert J\rVert_F^2, 0)`."""
        self._nfe["forward" if self._solving else "backward"] += 1
        z = y[0]
        c = y[-1] if has_context else None
        # Keep the divergence's graph only when the caller differentiates through it: direct
        # backprop in training, or the adjoint's backward solve.
        keep_graph = torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        frobenius = "jacobian" in regs
        if torch.is_inference_mode_enabled():
            # autograd cannot record on inference tensors: work on ordinary copies
            with torch.inference_mode(False):
                s, z = s.clone(), z.clone()
                c = c.clone() if c is not None else None
        with torch.inference_mode(False), torch.enable_grad():
            # Without an outer graph, differentiate from a fresh leaf: a view of a grad-requiring
            # input taken under no_grad (the adjoint's forward solve) is not differentiable.
            if not keep_graph or not z.requires_grad:
                z = z.detach().requires_grad_(True)
            T = self.log_T.exp()
            f = self.dynamics(s * T, z, c)
            if f.shape != z.shape:
                raise ValueError(
                    f"dynamics: expected an output of shape {tuple(z.shape)}, got {tuple(f.shape)}"
                )
            if eps is None:
                div, frob = exact_divergence(f, z, keep_graph, frobenius)
            else:
                div, frob = hutchinson_divergence(f, z, eps, keep_graph, frobenius)
            out = [T * f, T * div]
            for r in regs:
                if r == "kinetic":
                    out.append(T * f.pow(2).reshape(f.shape[0], -1).sum(1))
                else:
                    out.append(T * frob)
        if has_context:
            out.append(torch.zeros_like(y[-1]))
        if not keep_graph:
            out = [o.detach() for o in out]
        return tuple(out)

    def extra_repr(self) -> str:
        steps = f", steps={self.steps}" if self.steps is not None else ""
        train = "".join(
            f", {name}={getattr(self, name)}"
            for name in ("train_atol", "train_rtol")
            if getattr(self, name) is not None
        )
        return (
            f"solver={self.solver!r}{steps}, atol={self.atol}, rtol={self.rtol}{train}, "
            f"adjoint={self.adjoint}, divergence={self.divergence!r}, "
            f"eval_divergence={self.eval_divergence!r}"
        )


__all__ = [
    "CNF",
    "ADAPTIVE_SOLVERS",
    "FIXED_SOLVERS",
    "DIVERGENCES",
    "EXACT_MAX_FEATURES",
    "DIRECT_BUDGET_MB",
]
