r"""The command line: ``tractable train | eval | sample | plot | list | compare | score |
features``.

Every command works on run directories through :class:`tractable.runs.Run`; model-specific
settings go through ``-o KEY=VALUE`` (see ``tractable list``). Errors in what the user
typed are reported on one line, without a traceback (set ``TRACTABLE_DEBUG=1`` for one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .protocol import ESTIMATORS

CONFIG_KEYS = {
    "model",
    "data",
    "steps",
    "batch_size",
    "lr",
    "seed",
    "out",
    "options",
    "data_options",
    "train",
    "data_root",
    "data_seed",
    "n",
    "conditional",
}


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag}: expected KEY=VALUE, got {item!r}")
        out[key.replace("-", "_")] = _value(value)
    return out


def _read_config(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--config: no such file {path!r}")
    import yaml

    try:
        cfg = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"--config: {path!r} is not valid YAML ({err})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"--config: expected a mapping of settings in {path!r}")
    unknown = sorted(set(cfg) - CONFIG_KEYS)
    if unknown:
        raise ValueError(
            f"--config: unknown key(s) {unknown} in {path!r}; valid keys: {sorted(CONFIG_KEYS)}"
        )
    for key, value in cfg.items():
        kind = CONFIG_TYPES[key]
        ok = value is None if kind == "null" else _is(value, kind)
        if not ok and not (value is None and key in ("out", "data_root", "n")):
            raise ValueError(
                f"--config: {key!r} in {path!r}: expected {CONFIG_WORDS[kind]}, got "
                f"{type(value).__name__} ({value!r})"
            )
        if kind == "str" and value == "":
            raise ValueError(f"--config: {key!r} in {path!r}: expected a non-empty string")
    return cfg


CONFIG_TYPES = {
    "model": "str", "data": "str", "out": "str", "data_root": "str", "steps": "int",
    "batch_size": "int", "seed": "int", "data_seed": "int", "n": "int", "lr": "number",
    "options": "mapping", "data_options": "mapping", "train": "mapping", "conditional": "bool",
}  # fmt: skip
CONFIG_WORDS = {
    "str": "a string", "int": "an integer", "number": "a number", "mapping": "a mapping of "
    "KEY: VALUE settings", "bool": "true or false",
}  # fmt: skip


def _is(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    types = {"str": str, "mapping": dict, "bool": bool}[kind]
    return isinstance(value, types) and (
        kind != "mapping" or all(isinstance(k, str) for k in value)
    )


def _given(args: argparse.Namespace, name: str, flag: str) -> Any:
    r"""A flag's value, refusing an empty string where a name or a path is expected."""
    value = getattr(args, name)
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{flag}: expected a non-empty value, got {value!r}")
    return value


def _pick(value: Any, cfg: dict[str, Any], key: str, default: Any) -> Any:
    return value if value is not None else cfg.get(key, default)


def _print(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print("\n".join(lines))


def _fmt(value: Any, se: Any = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.4f}"
    if se is not None and not (isinstance(se, float) and math.isnan(se)):
        text += f" ± {se:.4f}"
    return text


def _estimator(result: dict[str, Any], split: str) -> str:
    r"""``exact``, or e.g. ``iwae, k=100: a bound``: the estimator and the kind of number."""
    name, kind = result.get(f"{split}_estimator"), result.get(f"{split}_estimate_kind")
    text = str(name) + (f", k={result[f'{split}_k']}" if f"{split}_k" in result else "")
    if f"{split}_rows_of" in result:
        text += f", {result[f'{split}_rows']} random examples of {result[f'{split}_rows_of']}"
    return text if kind in (None, name) else f"{text}: {'an' if kind == 'estimate' else 'a'} {kind}"


def cmd_train(args: argparse.Namespace) -> int:
    from . import runs

    # a bar on a terminal, one line per evaluation otherwise (stderr: --json output stays clean)
    progress = True
    for name in ("model", "data", "out", "config", "resume", "data_root"):
        _given(args, name, f"--{name.replace('_', '-')}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: expected an int >= 1, got {args.threads}")
    if args.resume is not None:
        ignored = [f for f in ("model", "data", "out", "config", "batch_size", "lr", "seed")
                   if getattr(args, f) is not None]  # fmt: skip
        if ignored or args.option or args.data_option or args.train_option:
            flags = [f"--{f.replace('_', '-')}" for f in ignored] or ["-o/--data-option/-t"]
            raise ValueError(
                f"--resume: continues a run with its own settings; {', '.join(flags)} would be "
                "ignored (only --steps applies)"
            )
        metrics = runs.continue_run(
            args.resume, steps=args.steps, progress=progress, threads=args.threads
        )
        run_dir = args.resume
    else:
        cfg = _read_config(args.config) if args.config is not None else {}
        options = {**cfg.get("options", {}), **_pairs(args.option, "--option")}
        settings = {
            "model": _pick(args.model, cfg, "model", runs.DEFAULT_MODEL),
            "data": _pick(args.data, cfg, "data", runs.DEFAULT_DATA),
            "steps": _pick(args.steps, cfg, "steps", 2000),
            "batch_size": _pick(args.batch_size, cfg, "batch_size", 256),
            "lr": _pick(args.lr, cfg, "lr", 1e-3),
            "seed": _pick(args.seed, cfg, "seed", 0),
            "out": _pick(args.out, cfg, "out", None),
            "options": options,
            "data_options": {
                **cfg.get("data_options", {}),
                **_pairs(args.data_option, "--data-option"),
            },
            "train_options": {
                **cfg.get("train", {}),
                **_pairs(args.train_option, "--train-option"),
            },
            "data_root": _pick(args.data_root, cfg, "data_root", None),
            "data_seed": _pick(args.data_seed, cfg, "data_seed", 0),
            "n": _pick(args.n, cfg, "n", None),
            "conditional": args.conditional or bool(cfg.get("conditional", False)),
        }
        for key in ("steps", "batch_size"):
            if settings[key] < 1:
                raise ValueError(
                    f"--{key.replace('_', '-')}: expected an int >= 1, got {settings[key]}"
                )
        if settings["n"] is not None and settings["n"] < 1:
            raise ValueError(f"--train-size: expected an int >= 1, got {settings['n']}")
        if not math.isfinite(settings["lr"]) or settings["lr"] <= 0:
            raise ValueError(f"--lr: expected a finite number > 0, got {settings['lr']}")
        metrics = runs.train_run(**settings, progress=progress, threads=args.threads)
        run_dir = metrics.get("run_dir")
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    lines = [
        f"run: {run_dir}",
        f"model: {metrics.get('model')} ({metrics.get('params')} parameters) on "
        f"{metrics.get('data')}, {metrics.get('steps')} steps in "
        f"{metrics.get('train_seconds', 0):.1f} s",
    ]
    if metrics.get("test_nll") is not None:
        lines.append(
            f"test NLL: {_fmt(metrics['test_nll'], metrics.get('test_nll_se'))} nats/example "
            f"({_estimator(metrics, 'test')})"
        )
    else:
        lines.append("test NLL: not defined (the model has no likelihood)")
    if metrics.get("test_bpd") is not None:
        lines.append(f"test bits/dim: {_fmt(metrics['test_bpd'], metrics.get('test_bpd_se'))}")
    if metrics.get("test_nll_conditional") is not None:
        lines.append(
            "test NLL given the class: "
            f"{_fmt(metrics['test_nll_conditional'], metrics.get('test_nll_conditional_se'))}"
        )
    if metrics.get("nonfinite_steps"):
        lines.append(f"skipped non-finite steps: {metrics['nonfinite_steps']}")
    if metrics.get("threads") is not None:
        timing = metrics.get("timing", {})
        total = timing.get("total")
        lines.append(
            f"threads: {metrics['threads']} ({metrics.get('threads_reason')})"
            + (f"; {total:.1f} s in all" if total is not None else "")
        )
    for p in metrics.get("plots", []):
        lines.append(f"plot: {p}")
    _print(metrics, args.json, lines)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .runs import Run

    if args.k is not None and args.k < 1:
        raise ValueError(f"--k: expected an int >= 1, got {args.k}")
    if args.metrics is not None:
        return _eval_samples(args)
    for flag in ("n", "extractor"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag}: applies to sample metrics; add --metrics LIST")
    if args.rows is not None and args.rows < 1:
        raise ValueError(f"--rows: expected an int >= 1, got {args.rows}")
    run = Run.load(args.run_dir)
    args.estimator = _resolve_estimator(run, args.estimator)
    result = run.estimate(args.split, method=args.estimator, k=args.k, rows=args.rows)
    result.update(run.diagnostics(args.split))  # e.g. a VAE's active units, KL per dimension
    default = args.estimator in (None, run.model.estimators[0])
    missing = f"{args.split}_nll" not in run.metrics()
    if (args.estimator is None and args.k is None and args.rows is None) or (default and missing):
        # the run's own result, or the one its final evaluation never wrote (cut short)
        update = result
    else:
        tag = f"{args.estimator or 'default'}" + (f"-{args.k}" if args.k else "")
        tag += f"-rows{args.rows}" if args.rows else ""
        evaluations = dict(run.metrics().get("evaluations", {}))
        evaluations[f"{args.split}:{tag}"] = result
        update = {"evaluations": evaluations}
    if run.note is None:  # an unfinished run's numbers are not the run's result
        _record(run, update)
    s = args.split
    lines = [
        f"{s} NLL: {_fmt(result[f'{s}_nll'], result[f'{s}_nll_se'])} nats/example "
        f"({_estimator(result, s)})"
    ]
    if result.get(f"{s}_bpd") is not None:
        lines.append(f"{s} bits/dim: {_fmt(result[f'{s}_bpd'], result.get(f'{s}_bpd_se'))}")
    if f"{s}_nll_conditional" in result:
        lines.append(
            f"{s} NLL given the class: "
            f"{_fmt(result[f'{s}_nll_conditional'], result[f'{s}_nll_conditional_se'])}"
        )
    if "active_units" in result:
        lines.append(f"active units: {result['active_units']} of {result['latent']}")
    if "kl_per_dimension" in result:
        kl = ", ".join(f"{v:.3f}" for v in result["kl_per_dimension"])
        lines.append(f"KL per latent dimension (nats): {kl}")
    _print(result, args.json, lines)
    return 0


ESTIMATOR_ALIASES = ("ode", "bound")


def _resolve_estimator(run: Any, name: str | None) -> str | None:
    r"""``--estimator``'s two aliases by what they compute: ``ode``, the exact likelihood of a
    model that solves an ODE for it (FFJORD, DDPM's probability-flow ODE, flow matching);
    ``bound``, the model's first estimator that gives a lower bound (DDPM's and a VAE's
    ``elbo``/``iwae``). Other names pass through."""
    if name not in ESTIMATOR_ALIASES:
        return name
    estimators = tuple(run.model.estimators)
    if name == "bound":
        bounds = [e for e in estimators if ESTIMATORS.get(e) == "bound"]
        if not bounds:
            raise ValueError(
                f"--estimator bound: model {run.name!r} has no bound to report; its "
                f"estimators are {', '.join(estimators)}"
            )
        return bounds[0]
    if not run.entry.ode or "exact" not in estimators:
        raise ValueError(
            f"--estimator ode: model {run.name!r} computes no likelihood by an ODE; its "
            f"estimators are {', '.join(estimators)}"
        )
    return "exact"


def _record(run: Any, update: dict[str, Any]) -> None:
    r"""Merge ``update`` into the run's metrics.json; on a run that cannot be written (read-only,
    a full disk) print the result only, with a warning saying so."""
    import warnings

    try:
        run.record(update)
    except OSError as err:
        warnings.warn(
            f"not recorded in {run.dir / 'metrics.json'}: {_os_error(err)}; the result is only "
            "printed",
            stacklevel=2,
        )


def _eval_samples(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_per_class, parse_metrics, summary_lines
    from .runs import Run, evaluate_run

    names = parse_metrics(args.metrics)
    if args.estimator is not None or args.k is not None:
        raise ValueError("--estimator/--k: apply to the NLL evaluation, not to --metrics")
    if args.split == "train":
        raise ValueError("--split: sample metrics compare with a held-out split, 'test' or 'val'")
    run = Run.load(args.run_dir)
    sampling = run.configure_sampling(_pairs(args.sample_option, "--sample-option"))
    writable = run.note is None and os.access(run.dir, os.W_OK)
    if not writable and run.note is None:
        import warnings

        warnings.warn(
            f"{run.dir} is not writable: the sample metrics are only printed", stacklevel=1
        )
    options = {"split": args.split, "extractor": args.extractor or "auto", "seed": args.seed,
               "features_root": args.features_dir}  # fmt: skip
    per_class = "pluralistic" in names and run.conditional
    if names == ["pluralistic"] and not per_class:
        raise ValueError(
            f"--metrics: pluralistic diversity is defined for class-conditional runs (samples "
            f"per class); {run.dir} is unconditional"
        )
    rest = [m for m in names if not (per_class and m == "pluralistic")]
    result = evaluate_run(run, rest, n=args.n, write=writable, **options) if rest else {}
    if per_class:
        plural = evaluate_per_class(
            lambda m: run.sample(m, seed=args.seed), run.classes, run.dataset, **options
        )
        value = plural.pop("pluralistic", None)
        result = {**plural, **result, "notes": result.get("notes", []) + plural["notes"]}
        if value is not None:
            result["pluralistic"] = value
            if writable:
                stored = dict(run.metrics().get("sample_metrics", {}))
                _record(run, {"sample_metrics": {**stored, "pluralistic": value}})
    if sampling:
        result["sampling"] = sampling
        if writable:
            stored = dict(run.metrics().get("sample_metrics", {}))
            _record(run, {"sample_metrics": {**stored, "sampling": sampling}})
    lines = summary_lines(result)
    if sampling:
        lines.append("sampling: " + ", ".join(f"{k}={v}" for k, v in sampling.items()))
    _print(result, args.json, lines)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from .runs import Run, write_samples

    if args.n < 1:
        raise ValueError(f"-n: expected an int >= 1, got {args.n}")
    _given(args, "out", "--out")
    run = Run.load(args.run_dir)
    run.configure_sampling(_pairs(args.sample_option, "--sample-option"))
    try:
        x, out = write_samples(run, args.n, args.temperature, args.out, args.seed)
    except OSError as err:
        hint = "; write them elsewhere with --out FILE" if args.out is None else ""
        raise ValueError(f"sample: {_os_error(err)}{hint}") from None
    print(f"wrote {tuple(x.shape)} samples to {out}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .runs import Run

    for p in Run.load(args.run_dir).plot():
        print(f"plot: {p}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from . import data
    from .registry import MODELS

    models = {
        name: {
            "family": e.family,
            "input": e.input,
            "likelihood": e.likelihood,
            "summary": e.summary,
            "options": e.option_names(),
        }
        for name, e in MODELS.items()
    }
    datasets = {name: data.describe(name) for name in data.names()}
    if args.json:
        print(json.dumps({"models": models, "datasets": datasets}, indent=2))
        return 0
    print("models (tractable train --model NAME [-o OPTION=VALUE ...]):")
    for name, m in models.items():
        print(f"  {name:<20} {m['summary']} [{m['family']}, likelihood {m['likelihood']}]")
        if m["options"]:
            print(f"  {'':<20} options: {', '.join(m['options'])}")
    print("\ndatasets (tractable train --data NAME, or a path to a .csv/.npy/.npz file):")
    for name, text in datasets.items():
        print(f"  {name:<22} {text.splitlines()[0] if text else ''}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .report import compare_runs

    human = names = None
    if args.human_eval is not None:
        from . import humaneval

        human, names = humaneval.results(args.human_eval), humaneval.labels(args.run_dirs)
    result = compare_runs(args.run_dirs, args.out, title=args.title, plots=not args.no_plots,
                          human_eval=human, human_eval_names=names)  # fmt: skip
    lines = [f"warning: {w}" for w in result["warnings"]]
    lines += [f"html: {result['html']}", f"markdown: {result['markdown']}"]
    lines += [f"plot: {p}" for p in result["plots"]]
    _print(result, args.json, lines)
    return 0


def cmd_human_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import humaneval

    if args.results:
        result = humaneval.results(args.results)
        _print(result, args.json, humaneval.format_results(result))
        return 0
    if Path(args.db).exists():
        if args.run_dirs:
            print(f"using the images already in {args.db} (the runs given are not sampled again)")
    elif not args.run_dirs:
        raise ValueError("RUN_DIR: give the runs to rate (or --db of an existing evaluation)")
    else:
        humaneval.pool_from_runs(
            args.run_dirs, args.db, n=args.images, turing=args.turing, pairs=args.pairs,
            checks=args.checks, seed=args.seed,
        )  # fmt: skip
    from .humaneval.app import serve

    print(f"human evaluation on http://{args.host}:{args.port}/ (answers in {args.db}); "
          "Ctrl-C stops")  # fmt: skip
    sys.stdout.flush()
    serve(args.db, host=args.host, port=args.port)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from .runs import score_run

    if args.k is not None and args.k < 1:
        raise ValueError(f"--k: expected an int >= 1, got {args.k}")
    result = score_run(
        args.run_dir,
        args.data,
        labels_column=args.labels_column,
        threshold_quantile=args.threshold_quantile,
        out=args.out,
        split=args.split,
        estimator=args.estimator,
        k=args.k,
    )
    lines = [
        f"scored {result['n']} rows of {result['data']} ({result['estimate_kind']} "
        "log-likelihoods)",
        f"threshold: {result['threshold']:.4f} (the {result['threshold_quantile']:g}-quantile of "
        f"{result['n_validation']} validation log-likelihoods)",
        f"flagged: {result['n_flagged']} ({100 * result['fraction_flagged']:.1f}%)",
    ]
    if "auroc" in result:
        lines.append(
            f"AUROC {result['auroc']:.4f}, AUPRC {result['auprc']:.4f} "
            f"({result['n_anomalies']} anomalies); flags: recall {result['flag_recall']:.4f}"
            + (
                f", precision {result['flag_precision']:.4f}"
                if result["flag_precision"] is not None
                else ""
            )
        )
    if "note" in result:
        lines.append(f"note: {result['note']}")
    lines.append(f"wrote {result['out']}")
    _print(result, args.json, lines)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from .evaluation import features

    if args.action == "train":
        progress = not args.json and sys.stderr.isatty()
        info = features.train_extractor(
            args.data,
            out=args.out,
            steps=args.steps,
            seed=args.seed,
            data_root=args.data_root,
            progress=progress,
        )
        lines = [
            f"feature classifier for {info['data']}: {info['features']} features, "
            f"{info['train']['steps']} steps in {info['train_seconds']:.1f} s",
            f"validation accuracy {info['val_accuracy']:.4f}, test accuracy "
            f"{info['test_accuracy']:.4f}",
            f"saved to {info['path']}",
        ]
        _print(info, args.json, lines)
        return 0
    ex = features.load(args.data, path=args.out)
    _print(ex.info, args.json, [f"{k}: {v}" for k, v in ex.info.items()])
    return 0


class _Parser(argparse.ArgumentParser):
    r"""argparse with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tractable",
        description="Likelihood-based generative models: train, evaluate, sample, plot.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a model into a run directory",
        description="Train a model; with no arguments, a MAF on 'moons'.",
    )
    t.add_argument("--model", help="model name (see 'tractable list'; default maf)")
    t.add_argument("--data", help="dataset name or a .csv/.npy/.npz path (default moons)")
    t.add_argument("--steps", type=int, help="training steps (default 2000)")
    t.add_argument("--batch-size", type=int, help="batch size (default 256)")
    t.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    t.add_argument("--seed", type=int, help="seed of the model and training (default 0)")
    t.add_argument("--data-seed", type=int, help="seed of the data splits (default 0)")
    t.add_argument("--train-size", dest="n", type=int, help="number of training examples to use")
    t.add_argument("--out", help="run directory to create (default runs/MODEL-DATA-TIME)")
    t.add_argument("--config", help="YAML file of settings (flags override it)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this run (to --steps in total)")
    t.add_argument("--data-root", help="folder of local benchmark data files")
    t.add_argument("--conditional", action="store_true", help="condition on the class labels")
    t.add_argument(
        "-o",
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="model option, e.g. -o hidden=[64,64] -o transforms=8, or a VAE's -o prior=mog "
        "-o decoder=logistic -o objective=iwae -o k=5 (see 'tractable list')",
    )
    t.add_argument(
        "--data-option",
        action="append",
        metavar="KEY=VALUE",
        help="dataset option, e.g. --data-option logit=0.05",
    )
    t.add_argument(
        "-t",
        "--train-option",
        action="append",
        metavar="KEY=VALUE",
        help="trainer option, e.g. -t schedule=cosine -t patience=5",
    )
    t.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="intra-op threads (default: one for a small model or on a busy machine, else one "
        "per core; OMP_NUM_THREADS is respected)",
    )
    t.add_argument("--json", action="store_true", help="print the metrics as JSON")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a run's NLL on a split")
    e.add_argument("run_dir")
    e.add_argument("--split", default="test", choices=("train", "val", "test"))
    e.add_argument(
        "--estimator",
        choices=(*ESTIMATORS, *ESTIMATOR_ALIASES),
        help="exact (flows), iwae (a VAE's default), importance or elbo; ode (the exact "
        "likelihood of FFJORD, DDPM or flow matching by its ODE) or bound (the model's "
        "lower bound, e.g. DDPM's elbo); the default is the model's own",
    )
    e.add_argument("--k", type=int, help="samples per example of iwae, importance and elbo")
    e.add_argument(
        "--rows",
        type=int,
        metavar="N",
        help="the likelihood of N random examples of the split (seeded; the standard error "
        "covers the choice), for costly estimators such as an ODE on images",
    )
    e.add_argument(
        "--metrics",
        metavar="LIST",
        help="sample metrics instead of the NLL: comma-separated fid,kid,prd,is,modes,birthday,"
        "pca,kl,wasserstein,memorisation,pluralistic (class-conditional runs) or all (stored "
        "under 'sample_metrics' in metrics.json)",
    )
    e.add_argument("--n", type=int, help="samples to draw for --metrics")
    e.add_argument(
        "--extractor",
        choices=("auto", "classifier", "inception", "raw"),
        help="image features for fid/kid/prd/is (default auto: the cached classifier)",
    )
    e.add_argument("--seed", type=int, default=0, help="seed of the samples (--metrics)")
    e.add_argument(
        "--sample-option",
        action="append",
        metavar="KEY=VALUE",
        help="a sampling setting for --metrics that leaves the weights alone, e.g. a DDPM's "
        "--sample-option sampler=ddim --sample-option sample_steps=100",
    )
    e.add_argument("--features-dir", help="folder of cached feature classifiers")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("sample", help="draw samples from a run")
    s.add_argument("run_dir")
    s.add_argument("-n", type=int, default=64, help="number of samples (per class if conditional)")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="file.npy or file.png (default RUN_DIR/samples.npy)")
    s.add_argument(
        "--sample-option",
        action="append",
        metavar="KEY=VALUE",
        help="a sampling setting that leaves the weights alone, e.g. a DDPM's "
        "--sample-option sampler=ddim --sample-option sample_steps=100",
    )
    s.set_defaults(func=cmd_sample)

    pl = sub.add_parser("plot", help="write a run's plots")
    pl.add_argument("run_dir")
    pl.set_defaults(func=cmd_plot)

    c = sub.add_parser(
        "compare",
        help="compare runs in one report (HTML and Markdown)",
        description="One table across runs (best per column marked) plus plots.",
    )
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    c.add_argument("--out", default="report.html", help="HTML file (report.md goes beside it)")
    c.add_argument("--title", default="tractable model comparison")
    c.add_argument("--no-plots", action="store_true", help="only the table")
    c.add_argument(
        "--human-eval",
        metavar="DB",
        help="a 'tractable human-eval' database: its results as columns of the runs it rated "
        "(matched by run directory name)",
    )
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compare)

    sc = sub.add_parser(
        "score",
        help="anomaly scores: per-row log-likelihoods and flags",
        description="Flag rows whose log-likelihood is below a quantile of the validation "
        "log-likelihoods; with a 0/1 labels column (1 = anomaly), report AUROC and AUPRC.",
    )
    sc.add_argument("run_dir")
    sc.add_argument("--data", required=True, help="a .csv/.txt/.tsv/.npy file or a dataset name")
    sc.add_argument("--labels-column", help="the 0/1 anomaly column (index or header name)")
    sc.add_argument(
        "--threshold-quantile", type=float, default=0.01, help="flag quantile (default 0.01)"
    )
    sc.add_argument("--out", help="CSV to write (default RUN_DIR/scores-NAME.csv)")
    sc.add_argument("--split", default="test", choices=("train", "val", "test"))
    sc.add_argument("--estimator", choices=tuple(ESTIMATORS))
    sc.add_argument("--k", type=int, help="samples per example of iwae, importance and elbo")
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(func=cmd_score)

    f = sub.add_parser(
        "features",
        help="train or show the feature classifier of image metrics",
        description="A small CNN classifier per image dataset, cached under "
        "$TRACTABLE_FEATURES or ~/.cache/tractable/features; its penultimate layer embeds "
        "images for FID/KID/precision-recall and its softmax gives the Inception Score.",
    )
    f.add_argument("action", choices=("train", "show"))
    f.add_argument("--data", required=True, help="digits, mnist5k, mnist or cifar10")
    f.add_argument("--out", help="folder to save to / load from (default: the cache)")
    f.add_argument("--steps", type=int, help="training steps (default per dataset)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--data-root", help="folder of local benchmark data files")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_features)

    he = sub.add_parser(
        "human-eval",
        help="rate samples of runs in the browser (Turing test and side by side)",
        description="A local web page where people judge samples; --results DB prints the "
        "fraction fooled per model and Bradley-Terry scores.",
    )
    he.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    he.add_argument("--db", default="human_eval.sqlite", help="the answers' SQLite database")
    he.add_argument("--host", default="127.0.0.1", help="address to bind (default: local only)")
    he.add_argument("--port", type=int, default=8000)
    he.add_argument("--images", type=int, default=32, help="samples per run in the pool")
    he.add_argument("--turing", type=int, default=6, help="Turing items per model per session")
    he.add_argument("--pairs", type=int, default=6, help="comparisons per pair of models")
    he.add_argument("--checks", type=int, default=2, help="attention checks per session")
    he.add_argument("--seed", type=int, default=0)
    he.add_argument("--results", metavar="DB", help="print the results of DB and exit")
    he.add_argument("--json", action="store_true")
    he.set_defaults(func=cmd_human_eval)

    from .variational.command import add_parser as add_fit_parser

    add_fit_parser(sub)  # tractable fit: reverse-KL variational inference on a target density

    ls = sub.add_parser("list", help="list models, datasets and their options")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    return p


def _os_error(err: OSError) -> str:
    r"""One line for an operating-system error, naming the path and what to do."""
    import errno

    path = err.filename if err.filename is not None else ""
    hints = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exhausted",
        errno.EFBIG: "the file size limit was reached (ulimit -f)",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
    }
    what = hints.get(err.errno, err.strerror or type(err).__name__)
    where = f"{path}: " if path else ""
    return f"{where}{what} ({err.strerror or err})" if err.errno in hints else f"{where}{what}"


def _warning_line(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"tractable: warning: {str(message).strip().splitlines()[0]}\n"


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    args = parser().parse_args(argv)
    if os.environ.get("TRACTABLE_DEBUG"):
        return args.func(args)
    import torch

    from .train import CheckpointError, DivergenceError
    from .train.lock import RunLockedError
    from .train.signals import Interrupted

    previous = warnings.formatwarning
    warnings.formatwarning = _warning_line
    threads = torch.get_num_threads()
    try:
        _command_threads(args)
        return args.func(args)
    except (
        ValueError,
        TypeError,
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        KeyError,
        ImportError,
        CheckpointError,
        DivergenceError,
        RunLockedError,
    ) as err:
        text = str(err).strip()
        if isinstance(err, KeyError) and text:
            text = f"missing entry {text}"
        msg = text.splitlines()[0] if text else type(err).__name__
        print(f"tractable: error: {msg}", file=sys.stderr)
        return 2
    except OSError as err:  # no permission, read-only, full disk, file-size limit
        print(f"tractable: error: {_os_error(err)}", file=sys.stderr)
        return 2
    except MemoryError as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else "MemoryError"
        print(f"tractable: error: not enough memory ({detail})", file=sys.stderr)
        return 2
    except Interrupted as err:
        print(f"tractable: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(
            "tractable: interrupted; resume with 'tractable train --resume RUN_DIR'",
            file=sys.stderr,
        )
        return 130
    finally:
        warnings.formatwarning = previous
        torch.set_num_threads(threads)


def _command_threads(args: argparse.Namespace) -> None:
    r"""Intra-op threads for the commands that evaluate, sample or plot runs: by the rules of
    :func:`~tractable.runs.threads.choose_threads` without a model size (the environment's
    choice, else one thread on a busy machine, else one per core). ``train`` chooses its own,
    per model. Beside other busy processes two threads spin against them: ``tractable plot``
    of a DDPM run on 8gaussians took 85 s with two threads at load 4, 11 s with one."""
    if args.func is cmd_train:
        return
    import torch

    from .runs.threads import choose_threads

    torch.set_num_threads(choose_threads(None, None)[0])


def entry() -> None:
    r"""The ``tractable`` program (console script and ``python -m tractable``): :func:`main`
    in a process of its own, whose long-lived objects are kept out of Python's cyclic garbage
    collector.

    ``gc.freeze`` moves every object tracked so far (the modules of torch and this package,
    some 170,000; 290,000 once ``train`` has imported torch's compiler, which
    :func:`~tractable.runs.training.torch_optim_import` freezes too) into a generation the
    collector never scans; what the command creates afterwards is collected as usual. Two
    costs go: the full collections during the run, which scan every imported object (four of
    them took 0.71 s of the default run, 0.19 s frozen), and the collection passes of the
    interpreter's shutdown (a script that only imports torch's compiler took 3.48 s, frozen
    2.61 s). Only for a process that runs one command and exits: called as a function inside
    a longer-lived program, :func:`main` freezes nothing.
    """
    import gc

    gc.freeze()
    code = main()
    gc.freeze()  # what the command created lives until the exit: skip its scan there
    sys.exit(code)


if __name__ == "__main__":
    entry()
