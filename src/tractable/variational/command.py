r"""``tractable fit``: fit a flow to one of the targets of
:mod:`tractable.variational.targets` by reverse KL, and print the ELBO, the importance-sampled
:math:`\log Z` with its standard error and the effective sample size.

The command line (:mod:`tractable.cli`) hooks it in with :func:`add_parser`; the flow is built
by name through the model registry (any vector model with an exact density and reparameterised
draws: ``realnvp``, ``nsf``, ``maf``, ``iaf``, ``planar``, ``radial``, ``gaussian``, ...), with
``-o KEY=VALUE`` options as for ``tractable train``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..registry import MODELS, build_model, get_entry, model_config
from .figures import fit_figure
from .fit import SCHEDULES, fit_reverse_kl
from .targets import TARGETS, target

DEFAULT_TARGET = "u1"
DEFAULT_FLOW = "realnvp"


def key_values(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    r"""``["a=1", "b=x"]`` as ``{"a": 1, "b": "x"}`` (values read as JSON when they parse).

    Example:
        >>> key_values(["hidden=[16,16]", "variant=coupling"], "-o")
        {'hidden': [16, 16], 'variant': 'coupling'}
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag}: expected KEY=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[key.replace("-", "_")] = value
    return out


def flow_models() -> list[str]:
    r"""The registry's models that can be fitted by reverse KL: vector models with an exact
    density (flows and the Gaussian baseline)."""
    return [n for n, e in MODELS.items() if e.input == "vector" and e.likelihood == "exact"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    r"""Add the ``fit`` command to ``subparsers`` (of :func:`tractable.cli.parser`)."""
    f = subparsers.add_parser(
        "fit",
        help="fit a flow to an unnormalised density by reverse KL (variational inference)",
        description="Fit a flow q to p(x) ∝ exp(-U(x)) by minimising KL(q||p) with "
        "reparameterised draws; print the ELBO, log Z by importance sampling (± s.e.) and "
        f"the effective sample size. Targets: {', '.join(TARGETS)}.",
    )
    f.add_argument("--target", default=DEFAULT_TARGET, help=f"target (default {DEFAULT_TARGET})")
    f.add_argument("--target-option", action="append", metavar="KEY=VALUE",
                   help="target option, e.g. --target-option dim=10 for the funnel")  # fmt: skip
    f.add_argument("--model", default=DEFAULT_FLOW, help=f"flow (default {DEFAULT_FLOW})")
    f.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                   help="flow option, e.g. -o hidden=[64,64] -o transforms=6")  # fmt: skip
    f.add_argument("--steps", type=int, default=2000, help="gradient steps (default 2000)")
    f.add_argument("--batch-size", type=int, default=256, help="draws per step (default 256)")
    f.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    f.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    f.add_argument("--grad-clip", type=float, help="largest gradient norm (default none)")
    f.add_argument(
        "--anneal", type=int, default=0, help="steps of annealing, beta 0.01 to 1 (default 0)"
    )
    f.add_argument("--eval-samples", type=int, default=10_000,
                   help="draws for the ELBO, log Z and ESS (default 10000)")  # fmt: skip
    f.add_argument("--seed", type=int, default=0, help="seed of the flow and the draws")
    f.add_argument("--out", help="folder for density.png and result.json")
    f.add_argument("--json", action="store_true", help="print the result as JSON")
    f.set_defaults(func=run)
    return f


def _check_args(args: argparse.Namespace) -> None:
    for name, low in (("steps", 1), ("batch_size", 1), ("anneal", 0), ("eval_samples", 2),
                      ("seed", 0)):  # fmt: skip
        value = getattr(args, name)
        if value < low:
            raise ValueError(f"--{name.replace('_', '-')}: expected an int >= {low}, got {value}")
    if not math.isfinite(args.lr) or args.lr <= 0:
        raise ValueError(f"--lr: expected a finite number > 0, got {args.lr}")
    if args.grad_clip is not None and not (math.isfinite(args.grad_clip) and args.grad_clip > 0):
        raise ValueError(f"--grad-clip: expected a finite number > 0, got {args.grad_clip}")
    if args.anneal > args.steps:
        raise ValueError(f"--anneal: expected at most --steps ({args.steps}), got {args.anneal}")
    if args.out is not None and not args.out.strip():
        raise ValueError("--out: expected a folder, got an empty value")


def run(args: argparse.Namespace) -> int:
    r"""Run ``tractable fit`` with parsed ``args``; prints the result, returns 0."""
    import sys

    _check_args(args)
    if args.target not in TARGETS:
        raise ValueError(f"--target: expected one of {', '.join(TARGETS)}, got {args.target!r}")
    t = target(args.target, **key_values(args.target_option, "--target-option"))
    fits = flow_models()
    if args.model not in fits:
        get_entry(args.model)  # an unknown name lists the models
        raise ValueError(
            f"--model: {args.model!r} has no exact density to fit by reverse KL; expected one "
            f"of {', '.join(fits)}"
        )
    options = key_values(args.option, "--option")
    torch.manual_seed(args.seed)
    flow = build_model(model_config(args.model, (t.dim,), options=options))
    progress = not args.json and sys.stderr.isatty()
    result = fit_reverse_kl(
        flow, t, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        schedule=args.schedule, grad_clip=args.grad_clip, anneal=args.anneal,
        eval_samples=args.eval_samples, seed=args.seed, progress=progress,
    )  # fmt: skip
    params = sum(p.numel() for p in flow.parameters() if p.requires_grad)
    out: dict[str, Any] = {
        "target": t.name, "target_options": key_values(args.target_option, "--target-option"),
        "dim": t.dim, "true_log_z": t.log_z, "model": args.model, "options": options,
        "params": params, **result.to_dict(history=False),
    }  # fmt: skip
    if args.out is not None:
        folder = Path(args.out)
        out["result"] = str(_write_json(folder / "result.json", {**out, **result.to_dict()}))
        if t.dim <= 2:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(args.seed)
                samples = flow.sample(20_000)
            out["plot"] = str(fit_figure(
                t.log_density, flow.log_prob, samples, folder / "density.png", t.extent,
                t.log_z, title=f"{args.model} fitted to {t.name} by reverse KL",
            ))  # fmt: skip
    _print(out, args)
    return 0


def _write_json(path: Path, values: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path


def _print(out: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(out, indent=2))
        return

    def num(key: str) -> str:
        return "n/a" if out[key] is None else f"{out[key]:.4f}"

    truth = "unknown" if out["true_log_z"] is None else f"{out['true_log_z']:.4f}"
    lines = [
        f"target: {out['target']} ({out['dim']}-D), true log Z {truth}",
        f"model: {out['model']} ({out['params']} parameters), {out['steps']} steps in "
        f"{out['seconds']:.1f} s",
        f"ELBO: {num('elbo')} ± {num('elbo_se')} (a lower bound on log Z)",
        f"log Z: {num('log_z')} ± {num('log_z_se')} (importance sampling, "
        f"{out['eval_samples']} draws)",
        f"ESS: {out['ess']:.0f} of {out['eval_samples']} ({100 * out['ess_fraction']:.1f}%)",
    ]
    if out["skipped_steps"]:
        lines.append(f"skipped non-finite steps: {out['skipped_steps']}")
    for key in ("plot", "result"):
        if key in out:
            lines.append(f"{key}: {out[key]}")
    print("\n".join(lines))


__all__ = ["DEFAULT_FLOW", "DEFAULT_TARGET", "add_parser", "flow_models", "key_values", "run"]
