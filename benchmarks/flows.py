r"""Side-by-side benchmarks of tractable's flows against zuko, nflows and normflows.

Regenerates BENCHMARKS.md (and benchmarks/results.json, benchmarks/roofline.png)::

    .venv/bin/python benchmarks/flows.py            # full run, about 30 min on 2 cores
    .venv/bin/python benchmarks/flows.py --quick    # minutes: D in (2, 64); writes to /tmp
    .venv/bin/python benchmarks/flows.py --report-only   # re-render from results.json

Three parts (``--only`` picks some):

* ``throughput``: MAF, RealNVP, NSF (coupling) and NSF (AR) at D = 2, 8, 64, 784 in every
  library: parameter counts, samples/s of ``log_prob``, a training step and ``sample``, peak
  memory, and tractable's ratio to the best peer (see ``_throughput.py``);
* ``quality``: test bits/dim on digits after the same training budget (see ``_quality.py``);
* ``roofline``: this machine's ``torch.mm`` GFLOP/s and the fraction of it that MAF
  ``log_prob`` reaches.

The peers are optional dependencies: ``pip install -e '.[bench]'``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _measure  # noqa: E402
import _quality  # noqa: E402
import _report  # noqa: E402
import _throughput  # noqa: E402
from _models import FAMILIES, LIBRARIES, UNVALIDATED, Config, version  # noqa: E402

PARTS = ("throughput", "quality", "roofline")


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _made_flops(D: int, cfg: Config, params: int = 2) -> int:
    r"""Floating-point operations of one MAF sample's dense MADE products, all layers."""
    sizes = (D, *cfg.hidden, params * D)
    return 2 * cfg.transforms * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def roofline(rows: list[dict], batch: int) -> dict[str, object]:
    r"""The machine's matmul peak, the MADE shapes' addmm rate at D = 64, and each library's
    MAF ``log_prob`` GFLOP/s with its fraction of the peak."""
    sizes = (1024, 2048)
    peak = max(_measure.matmul_gflops(n, n, n) for n in sizes)
    cfg = Config()
    widths = (64, *cfg.hidden, 128)  # MADE at D = 64: 64 inputs, 2 x 64 outputs
    shapes = list(zip(widths[:-1], widths[1:], strict=True))
    h = [torch.randn(batch, k) for k, _ in shapes]
    w = [torch.randn(m, k) for k, m in shapes]
    b = [torch.randn(m) for _, m in shapes]

    def made() -> None:
        for hi, wi, bi in zip(h, w, b, strict=True):
            torch.addmm(bi, hi, wi.t())

    inner = 20
    threads = torch.get_num_threads()
    best = min(_measure.timed(made, inner)[1] for _ in range(10)) / threads
    made_mm = 2 * batch * sum(k * m for k, m in shapes) / best / 1e9
    gflops: dict[str, dict[str, float]] = {}
    fraction: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["family"] != "maf" or r["library"] == UNVALIDATED:
            continue
        # per second of CPU time per thread, like the peak: steady under load
        g = _made_flops(r["D"], cfg) * r["log_prob_cpu"] * threads / 1e9
        gflops.setdefault(r["library"], {})[str(r["D"])] = g
        fraction.setdefault(r["library"], {})[str(r["D"])] = g / peak
    return {
        "peak": peak,
        "sizes": list(sizes),
        "threads": torch.get_num_threads(),
        "made_mm": made_mm,
        "batch": batch,
        "gflops": gflops,
        "fraction": fraction,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="D in (2, 64), 3 short repeats")
    p.add_argument("--only", default=",".join(PARTS), help="comma-separated parts to run")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--dims", default=None, help="comma-separated D (default 2,8,64,784)")
    p.add_argument("--libraries", default=",".join(LIBRARIES))
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--target", type=float, default=None, help="seconds per timed repeat")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=None, help="training steps on digits")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory profiles")
    p.add_argument("--no-gmm", action="store_true", help="skip the Gaussian mixture on digits")
    p.add_argument("--quality-families", default="maf,nsf-ar", help="flows trained on digits")
    p.add_argument(
        "--validation-off", action="store_true", help=f"add a {UNVALIDATED!r} row to each table"
    )
    p.add_argument("--out", type=Path, default=None, help="default BENCHMARKS.md (quick: /tmp)")
    p.add_argument("--json", type=Path, default=None, help="default benchmarks/results.json")
    p.add_argument("--report-only", action="store_true", help="re-render from --json")
    p.add_argument(
        "--merge", action="store_true", help="keep the parts of --json that --only skips"
    )
    args = p.parse_args(argv)
    if args.out is None:
        args.out = (
            Path("/tmp/tractable-benchmarks-quick.md") if args.quick else ROOT / "BENCHMARKS.md"
        )
    if args.json is None:
        args.json = (
            Path("/tmp/tractable-results-quick.json") if args.quick else HERE / "results.json"
        )

    command = "python benchmarks/flows.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    if args.report_only:
        results = json.loads(args.json.read_text())
        command = results.get("command", command)
    else:
        warnings.filterwarnings("ignore")
        torch.set_num_threads(args.threads)
        torch.set_default_dtype(torch.float32)
        parts = tuple(s for s in args.only.split(",") if s)
        unknown = sorted(set(parts) - set(PARTS))
        if unknown:
            p.error(f"--only: unknown parts {unknown}; expected some of {PARTS}")
        dims = (
            tuple(int(d) for d in args.dims.split(","))
            if args.dims
            else ((2, 64) if args.quick else (2, 8, 64, 784))
        )
        repeats = args.repeats or (3 if args.quick else 7)
        target = args.target or (0.1 if args.quick else 0.25)
        steps = args.steps or (300 if args.quick else 3000)
        libraries = tuple(args.libraries.split(","))
        if args.validation_off:
            libraries += (UNVALIDATED,)
        versions = {
            name: version(name)
            for name in ("torch", "numpy", "zuko", "nflows", "normflows", "scikit-learn")
        }
        results: dict[str, object] = {
            "command": command,
            "machine": _measure.machine(versions, ROOT),
            "load_before": _load(),
            "settings": {"repeats": repeats, "target": target, "dims": list(dims)},
        }
        start = time.time()
        batches = _throughput.Batches()
        rows: list[dict] = []
        earlier = json.loads(args.json.read_text()) if args.merge and args.json.is_file() else {}
        if "roofline" in parts and "throughput" not in parts and "throughput" in earlier:
            rows = earlier["throughput"]
        elif "throughput" in parts or "roofline" in parts:
            families = tuple(args.families.split(",")) if "throughput" in parts else ("maf",)
            rows = _throughput.run(
                families, dims, libraries, repeats, target, batches, memory=not args.no_memory
            )
            if "throughput" in parts:
                results["throughput"] = rows
        if "roofline" in parts:
            results["roofline"] = roofline(rows, batches.log_prob)
        if "quality" in parts:
            peers = tuple(lib for lib in libraries if lib != UNVALIDATED)
            results["quality"] = _quality.run(
                peers, tuple(args.quality_families.split(",")), steps, gmm=not args.no_gmm
            )
        results["load_after"] = _load()
        results["seconds"] = time.time() - start
        if args.merge and args.json.is_file():
            # keep the parts of an earlier run that this one did not redo
            earlier = json.loads(args.json.read_text())
            for part in PARTS:
                if part not in results and part in earlier:
                    results[part] = earlier[part]
            if "quality" in results and "quality" in earlier:
                # rows of models this run did not train are kept (the mixture by library)
                def key(r: dict) -> tuple[str, str]:
                    return (r["library"], "" if r["library"] == "scikit-learn" else r["family"])

                done = {key(r) for r in results["quality"]["rows"]}
                results["quality"]["rows"] += [
                    r for r in earlier["quality"]["rows"] if key(r) not in done
                ]
            results["command"] = f"{earlier.get('command', '')}; then {command}"
        args.json.write_text(json.dumps(results, indent=1))
    notes = HERE / "notes.md"
    if notes.is_file():
        results["notes"] = notes.read_text()
    if results.get("roofline"):
        _report.roofline_figure(results["roofline"], HERE / "roofline.png")
    args.out.write_text(_report.render(results, results.get("command", command)))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
