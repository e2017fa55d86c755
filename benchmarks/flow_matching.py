r"""Flow matching and DDPM on the 2-D toys (issue 14): our flow matching against our default NSF
run and against the peer torchcfm, all scored by the same exact ODE likelihood.

One process, one intra-op thread, rounds alternating the three trainings on the same data
(8gaussians, 20,000 train / 5,000 test, data seed 0), each round with one training seed:

* ``nsf``: the default run ``tractable train --model nsf --data 8gaussians`` (same Python path
  as the CLI: :func:`tractable.runs.training.train_run`);
* ``flow-matching``: the documented command (:data:`FM_COMMAND`, printed in the JSON);
* ``torchcfm``: torchcfm's ``ConditionalFlowMatcher`` (or, with ``--peer-ot``, its
  ``ExactOptimalTransportConditionalFlowMatcher``) drawing :math:`(t, x_t, u_t)` for the very
  same velocity network (built by our builder from the same options and seed, so the initial
  weights are identical), trained with the same Adam, learning-rate schedule, EMA, batch,
  steps and epoch order by a plain loop (the trainer's own optimiser and schedule objects); its
  field is then scored by our :class:`~tractable.flow_matching.FlowMatching` (dopri5,
  atol = rtol = 1e-5, exact trace), so that only the training differs.

Reported per run: the test NLL (nats) with its standard error over the 5,000 test points, the
paired excess over the true mixture density on the same points (mean and s.e. of
:math:`\log p_\text{true}(x) - \log p_\text{model}(x)`; the true density scores 2.853 on this
test split, the entropy is 2.838), and the training time: wall, the trainer's clock
(``train_seconds``: steps, validations and the mode-coverage samples at each validation) for
ours, the loop's clock for torchcfm (no validation); and the process's CPU time of the same
span (ours: that of the whole ``train_run`` less that of its final evaluation, measured by
doing the evaluation again), which moves much less with the machine's load than the wall
clock. Within a round NSF and flow matching swap places every other round (ABBA), so a drift
of the load favours neither. The load average is read before and after each run. With
``--ddpm``, also DDPM on 8gaussians and moons (``tractable train --model ddpm --steps 8000
-t schedule=cosine``): the test bound (``--estimator elbo``) and the ODE NLL
(``--estimator exact``) with their standard errors, and the paired difference bound - ODE.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/flow_matching.py --ddpm \
        --out benchmarks/results/flow_matching.json

Not part of the test suite; torchcfm is an optional dependency (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import tractable as tr
from tractable.evaluation.functions import MIXTURE_STD, mixture_log_density
from tractable.flow_matching import FlowMatching, build_flow_matching
from tractable.runs import Run
from tractable.runs.limits import build_checked
from tractable.runs.setup import prepare
from tractable.runs.training import train_run
from tractable.train import LRSchedule, TrainConfig, make_optimizer
from tractable.train.batches import permutation

DATA = "8gaussians"
SIGMA = MIXTURE_STD["8gaussians"]  # the components' standard deviation
ENTROPY = math.log(8) + math.log(2 * math.pi * math.e * SIGMA**2)
ATOL = RTOL = 1e-5

# The NSF default run: `tractable train --model nsf --data 8gaussians`.
NSF_COMMAND: dict[str, Any] = {"steps": 2000, "lr": 1e-3, "batch_size": 256, "options": {},
                               "train_options": {}}  # fmt: skip
# The documented flow-matching command (see BENCHMARKS.md for the measurements behind it):
# the stable target field (Xu et al. 2023) over the batch. With -o likelihood_after=K it ends
# with maximum-likelihood steps (measured, not documented).
FM_COMMAND: dict[str, Any] = {
    "steps": 10000,
    "lr": 1e-2,
    "batch_size": 256,
    "options": {
        "hidden": [64, 64, 64, 64],
        "time_scale": 1.0,
        "sigma_min": 0.05,
        "target": "stable",
    },
    "train_options": {
        "schedule": "cosine",
        "eval_every": 2000,
        "checkpoint_every": 2000,
        "restore_best": False,
    },  # fmt: skip
}
DDPM_COMMAND: dict[str, Any] = {"steps": 8000, "lr": 1e-3, "batch_size": 256, "options": {},
                                "train_options": {"schedule": "cosine"}}  # fmt: skip


def cli(model: str, data: str, command: dict[str, Any]) -> str:
    r"""The ``tractable train`` command line of a run."""
    parts = [f"tractable train --model {model} --data {data}"]
    if command["steps"] != 2000:
        parts.append(f"--steps {command['steps']}")
    if command["lr"] != 1e-3:
        parts.append(f"--lr {command['lr']:g}")
    if command["batch_size"] != 256:
        parts.append(f"--batch-size {command['batch_size']}")
    for flag, opts in (("-o", command["options"]), ("-t", command["train_options"])):
        for k, v in opts.items():
            value = json.dumps(v, separators=(",", ":")) if isinstance(v, list) else v
            value = str(value).lower() if isinstance(v, bool) else value
            parts.append(f"{flag} {k}={value}")
    return " ".join(parts)


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def true_log_density(x: torch.Tensor) -> torch.Tensor:
    r"""``log p(x)`` of the 8gaussians mixture (the evaluation's exact mixture density)."""
    return mixture_log_density(DATA, SIGMA)(x)


def summarise(log_p: torch.Tensor, true: torch.Tensor | None) -> dict[str, float]:
    n = log_p.shape[0]
    out = {"test_nll": float(-log_p.mean()), "test_nll_se": float(log_p.std() / math.sqrt(n))}
    if true is not None:
        gap = true - log_p
        out["excess"] = float(gap.mean())
        out["excess_se"] = float(gap.std() / math.sqrt(n))
    return out


def run_ours(model: str, data: str, command: dict[str, Any], seed: int, root: Path,
             test: torch.Tensor, true: torch.Tensor | None) -> dict[str, Any]:  # fmt: skip
    r"""Train through the CLI's Python path; the test NLL as ``tractable eval`` gives it, and
    per-example values for the paired excess."""
    out = root / f"{model}-{data}-seed{seed}"
    before, start, cpu = load(), time.perf_counter(), time.process_time()
    metrics = train_run(
        model,
        data,
        steps=command["steps"],
        batch_size=command["batch_size"],
        lr=command["lr"],
        seed=seed,
        out=out,
        options=command["options"],
        train_options=command["train_options"],
        progress=False,
        plots=False,
        threads=1,
    )
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = load()
    run = Run.load(out)
    # the final evaluation's CPU time, by doing it again: training's is the rest
    cpu_eval = time.process_time()
    run.estimate("val")
    run.estimate("test")
    cpu_eval = time.process_time() - cpu_eval
    log_p, kind = run.log_likelihood(test)
    res = summarise(log_p, true)
    # the figure metrics.json holds (the same estimator): a check on the per-example values
    assert abs(res["test_nll"] - metrics["test_nll"]) < 1e-6, (res, metrics["test_nll"])
    res.update(
        seed=seed,
        kind=kind,
        train_seconds=metrics["train_seconds"],
        seconds_with_evaluation=total,
        train_cpu_seconds=cpu - cpu_eval,
        best_step=metrics.get("best_step"),
        validation_seconds=metrics.get("validation_seconds"),
        checkpoint_seconds=metrics.get("checkpoint_seconds"),
        threads=metrics.get("threads"),
        params=metrics["params"],
        load_before=before,
        load_after=after,
        run_dir=str(out),
    )
    return res


PEERS = {
    # Lipman et al.'s path, N(t x1, (1 - (1 - sigma) t)^2): ours with sigma_min = sigma
    "target": "TargetConditionalFlowMatcher",
    # the straight path with a constant sigma around it, N(t x1 + (1 - t) x0, sigma^2)
    "cfm": "ConditionalFlowMatcher",
    # the same, noise and data paired by its exact minibatch OT plan (pairs drawn from the plan)
    "ot": "ExactOptimalTransportConditionalFlowMatcher",
}


def run_torchcfm(command: dict[str, Any], seed: int, train: torch.Tensor, test: torch.Tensor,
                 true: torch.Tensor, peer: str) -> dict[str, Any]:  # fmt: skip
    r"""torchcfm's matcher ``PEERS[peer]`` (with ``sigma`` = our ``sigma_min``) on our network,
    with our trainer's Adam, schedule, EMA, batch, steps and epoch order, in a plain loop;
    scored by our exact ODE likelihood."""
    import torchcfm.conditional_flow_matching as cfm

    options = dict(command["options"])
    decay = float(options.pop("ema", 0.0))
    sigma = float(options.pop("sigma_min", 0.0))
    if options.pop("coupling", "independent") != "independent":
        raise ValueError("the torchcfm side takes its coupling from its matcher (--peers)")
    # torchcfm trains by flow matching alone: our maximum-likelihood fine-tune and our stable
    # target have no counterpart there, so its steps regress on its matcher's own targets
    for key in ("likelihood_after", "likelihood_steps", "times", "target", "reference"):
        options.pop(key, None)
    torch.manual_seed(seed)  # as train_run seeds before building: the same initial weights
    net = build_flow_matching((2,), **options).net
    setup = prepare("flow-matching", DATA, options=command["options"])
    torch.manual_seed(seed)
    theirs = build_checked(setup.model_config).net.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in net.state_dict().items()), "not the same init"
    average = [p.detach().clone() for p in net.parameters()] if decay > 0 else None
    matcher = getattr(cfm, PEERS[peer])(sigma=sigma)
    steps, batch, lr = command["steps"], command["batch_size"], command["lr"]
    # the trainer's own optimiser (fused Adam) and learning-rate schedule
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    tcfg = TrainConfig(
        steps=steps,
        batch_size=batch,
        lr=lr,
        **{k: v for k, v in command["train_options"].items() if k in known},
    )
    opt, schedule = make_optimizer(net.parameters(), tcfg), LRSchedule(tcfg)
    per_epoch = train.shape[0] // batch
    before, start, cpu = load(), time.perf_counter(), time.process_time()
    net.train()
    for step in range(steps):
        epoch, i = divmod(step, per_epoch)
        if i == 0:
            order = permutation(train.shape[0], seed, epoch)
        x1 = train[order[i * batch : (i + 1) * batch]]
        rate = schedule.rate(step)
        for group in opt.param_groups:
            group["lr"] = rate
        if average is not None:  # the same bias-corrected EMA as ours, before each loss
            d = min(decay, (1.0 + step) / (10.0 + step))
            with torch.no_grad():
                for a, p in zip(average, net.parameters(), strict=True):
                    a.lerp_(p, 1.0 - d)
        x0 = torch.randn_like(x1)
        t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
        opt.zero_grad(set_to_none=True)
        loss = (net(xt, t) - ut).pow(2).sum(1).mean()
        loss.backward()
        opt.step()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = load()
    if average is not None:
        with torch.no_grad():
            for a, p in zip(average, net.parameters(), strict=True):
                p.copy_(a)
    field = FlowMatching(net, (2,), atol=ATOL, rtol=RTOL).eval()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        log_p = torch.cat([field.estimate(test[i : i + 1024]).values for i in
                           range(0, test.shape[0], 1024)]).double()  # fmt: skip
    res = summarise(log_p, true)
    res.update(seed=seed, matcher=PEERS[peer], kind="exact", train_seconds=seconds,
               train_cpu_seconds=cpu,
               load_before=before,
               load_after=after, params=sum(p.numel() for p in net.parameters()))  # fmt: skip
    return res


def ddpm_rows(command: dict[str, Any], seeds: list[int], root: Path) -> list[dict[str, Any]]:
    rows = []
    for data in ("8gaussians", "moons"):
        for seed in seeds:
            out = root / f"ddpm-{data}-seed{seed}"
            before = load()
            metrics = train_run("ddpm", data, steps=command["steps"], lr=command["lr"],
                                batch_size=command["batch_size"], seed=seed, out=out,
                                options=command["options"],
                                train_options=command["train_options"], progress=False,
                                plots=False, threads=1)  # fmt: skip
            run = Run.load(out)
            test = run.dataset.split("test")
            row: dict[str, Any] = {"data": data, "seed": seed, "command": cli("ddpm", data,
                                   command), "train_seconds": metrics["train_seconds"],
                                   "validation_seconds": metrics.get("validation_seconds"),
                                   "restored_best_step": metrics.get("best_step"),
                                   "load_before": before}  # fmt: skip
            values = {}
            for method in ("elbo", "exact"):
                start = time.perf_counter()
                est = run.estimate("test", method=method)
                log_p, _ = run.log_likelihood(test, method=method)
                assert abs(float(-log_p.mean()) - est["test_nll"]) < 1e-6
                values[method] = log_p.double()
                row[method] = {"test_nll": est["test_nll"], "test_nll_se": est["test_nll_se"],
                               "eval_seconds": time.perf_counter() - start}  # fmt: skip
            gap = values["exact"] - values["elbo"]  # bound NLL - ODE NLL, per example
            row["bound_minus_ode"] = float(gap.mean())
            row["bound_minus_ode_se"] = float(gap.std() / math.sqrt(gap.shape[0]))
            row["bound_ge_ode"] = bool(row["elbo"]["test_nll"] >= row["exact"]["test_nll"])
            if data == "8gaussians":
                row["true_test_nll"] = float(-true_log_density(test).mean())
            row["load_after"] = load()
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--ddpm", action="store_true", help="also DDPM on 8gaussians and moons")
    p.add_argument("--ddpm-only", action="store_true", help="only the DDPM rows")
    p.add_argument("--no-peer", action="store_true", help="skip torchcfm")
    p.add_argument(
        "--peers",
        default="target,cfm,ot",
        help=f"torchcfm matchers to train, comma-separated, of {sorted(PEERS)}",
    )
    p.add_argument("--fm-steps", type=int, default=None, help="override FM_COMMAND's steps")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: 20 steps each, a 10-step DDPM chain (no meaningful numbers)",
    )
    p.add_argument("--out", default=None, help="JSON results file")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the entries of --out that this run does not produce",
    )
    p.add_argument("--keep", default=None, help="keep the run directories here")
    args = p.parse_args()

    torch.set_num_threads(1)
    fm, nsf, ddpm = dict(FM_COMMAND), dict(NSF_COMMAND), dict(DDPM_COMMAND)
    if args.quick:
        fm["steps"] = nsf["steps"] = ddpm["steps"] = 20
        ddpm["options"] = {"steps": 10}
    if args.fm_steps is not None:
        fm["steps"] = args.fm_steps
    if fm["steps"] != FM_COMMAND["steps"] and "likelihood_after" in FM_COMMAND["options"]:
        # the same number of final maximum-likelihood steps (at most a tenth of the run)
        final = FM_COMMAND["steps"] - FM_COMMAND["options"]["likelihood_after"]
        after = fm["steps"] - min(final, fm["steps"] // 10)
        fm["options"] = {**fm["options"], "likelihood_after": after}
    peers = [] if args.no_peer else [k for k in args.peers.split(",") if k]
    for k in peers:
        if k not in PEERS:
            raise ValueError(f"--peers: expected names of {sorted(PEERS)}, got {k!r}")
    root = Path(args.keep or tempfile.mkdtemp(prefix="fm-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    ds = tr.data.load(DATA, seed=0)
    train, test = ds.train, ds.split("test")
    true = true_log_density(test)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()  # fmt: skip
    result: dict[str, Any] = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/flow_matching.py " + " ".join(sys.argv[1:]),
        "tractable_commit": commit,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "entropy": ENTROPY,
        "true_test_nll": float(-true.mean()),
        "true_test_nll_se": float(true.std() / math.sqrt(true.shape[0])),
        "ode": {"solver": "dopri5", "atol": ATOL, "rtol": RTOL, "divergence": "exact"},
        "commands": {
            "nsf": cli("nsf", DATA, nsf),
            "flow-matching": cli("flow-matching", DATA, fm),
        },  # fmt: skip
        "load_start": load(),
        "runs": {"nsf": [], "flow-matching": [], **{f"torchcfm-{k}": [] for k in peers}},
    }
    if not args.no_peer:
        import torchcfm

        result["torchcfm"] = {"version": torchcfm.__version__,
                              "matchers": {k: PEERS[k] for k in peers}}  # fmt: skip
    for i, seed in enumerate([] if args.ddpm_only else args.seeds):
        pair = [("nsf", nsf), ("flow-matching", fm)]
        for model, command in pair if i % 2 == 0 else pair[::-1]:
            r = run_ours(model, DATA, command, seed, root, test, true)
            result["runs"][model].append(r)
            print(model, json.dumps(r), flush=True)
        for peer in peers:
            r = run_torchcfm(fm, seed, train, test, true, peer)
            result["runs"][f"torchcfm-{peer}"].append(r)
            print(f"torchcfm-{peer}", json.dumps(r), flush=True)
    # wall-time ratios within each round (the runs of one round are adjacent in time)
    rounds = zip(result["runs"]["nsf"], result["runs"]["flow-matching"], strict=False)
    rounds = list(rounds)
    result["fm_over_nsf_train_seconds"] = [f["train_seconds"] / n["train_seconds"]
                                           for n, f in rounds]  # fmt: skip
    result["fm_over_nsf_train_cpu_seconds"] = [f["train_cpu_seconds"] / n["train_cpu_seconds"]
                                               for n, f in rounds]  # fmt: skip
    if args.ddpm or args.ddpm_only:
        result["ddpm"] = ddpm_rows(ddpm, args.seeds[:1], root)
    result["load_end"] = load()
    if args.merge and args.out and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        if args.ddpm_only:  # only the DDPM rows are new
            result = {
                **old,
                "ddpm": result["ddpm"],
                "ddpm_command": result["command"],
                "ddpm_load": [result["load_start"], result["load_end"]],
            }
        else:
            result = {**old, **result}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
