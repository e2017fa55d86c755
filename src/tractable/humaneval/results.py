r"""The results of a human evaluation from its database: per model the fraction of Turing-test
answers fooled (a generated image judged real) with a Wilson interval, and Bradley–Terry
scores with bootstrap intervals from the side-by-side answers. Sessions that failed an attention
check (chose the noise image) are left out, and counted."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .stats import bradley_terry, wilson_interval
from .storage import REAL, answered, settings


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def results(db: str | Path, *, level: float = 0.95, bootstrap: int = 1000) -> dict[str, Any]:
    r"""``{"models", "sessions", "excluded", "turing": {model: {...}}, "real": {...},
    "bradley_terry": {model: {...}}, "comparisons"}`` for the answers in ``db``."""
    conf = settings(db)
    models: list[str] = conf["models"]
    rows = answered(db)
    failed = {
        r["session"]
        for r in rows
        if r["task"] == "check" and (r["left"] if r["choice"] == "left" else r["right"]) != REAL
    }
    kept = [r for r in rows if r["session"] not in failed]
    turing: dict[str, Any] = {}
    for source in [*models, REAL]:
        said_real = [
            r["choice"] == "real" for r in kept if r["task"] == "turing" and r["left"] == source
        ]
        k, n = sum(said_real), len(said_real)
        low, high = wilson_interval(k, n, level)
        turing[source] = {"judged_real": k, "n": n, "fraction": k / n if n else None,
                          "low": low, "high": high}  # fmt: skip
    index = {m: i for i, m in enumerate(models)}
    pairs = []
    for r in kept:
        if r["task"] == "ab":
            win, lose = (
                (r["left"], r["right"]) if r["choice"] == "left" else (r["right"], r["left"])
            )
            pairs.append((index[win], index[lose]))
    bt = bradley_terry(pairs, len(models), bootstrap=bootstrap, level=level)
    return {
        "models": models,
        "sessions": len({r["session"] for r in rows}),
        "excluded": len(failed),
        "answers": len(kept),
        "level": level,
        "turing": {m: turing[m] for m in models},
        "real": turing[REAL],
        "bradley_terry": {
            m: {
                "score": float(bt["score"][i]),
                "low": _finite(bt["low"][i]),
                "high": _finite(bt["high"][i]),
                "wins": int(bt["wins"][i].sum()),
            }
            for i, m in enumerate(models)
        },  # fmt: skip
        "comparisons": len(pairs),
    }


def format_results(res: dict[str, Any]) -> list[str]:
    r"""The results as printable lines (a short text table)."""
    pct = f"{round(100 * res['level'])}%"
    lines = [
        f"{res['sessions']} rater session(s), {res['excluded']} excluded (failed an attention "
        f"check), {res['answers']} answers kept",
        "",
        f"Generative Turing test: fraction of generated images judged real ({pct} Wilson)",
    ]
    width = max(len(m) for m in [*res["models"], "real images"])

    def row(name: str, t: dict[str, Any]) -> str:
        if not t["n"]:
            return f"  {name:<{width}}  no answers"
        return (f"  {name:<{width}}  {t['fraction']:.3f} [{t['low']:.3f}, {t['high']:.3f}]"
                f"  ({t['judged_real']}/{t['n']})")  # fmt: skip

    lines += [row(m, res["turing"][m]) for m in res["models"]]
    lines.append(row("real images", res["real"]))
    lines += ["", f"Side by side: Bradley-Terry score ({pct} bootstrap), {res['comparisons']} "
              "comparisons"]  # fmt: skip
    for m in res["models"]:
        b = res["bradley_terry"][m]
        if res["comparisons"]:
            lines.append(f"  {m:<{width}}  {b['score']:+.3f} [{b['low']:+.3f}, {b['high']:+.3f}]"
                         f"  ({b['wins']} wins)")  # fmt: skip
        else:
            lines.append(f"  {m:<{width}}  no comparisons")
    return lines
