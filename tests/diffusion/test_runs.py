"""DDPM and flow matching through the run directory: every estimator from the stored run, and
bits/dim on discrete images (the bound and the ODE value of the same dequantized data)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tractable.runs import Run, train_run

TINY = {"hidden": [8], "steps": 4, "solver": "rk4", "ode_steps": 2}


@pytest.mark.parametrize("data", ["moons", "digits"])
def test_ddpm_run_reports_the_bound_and_the_ode_likelihood(data: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    kwargs = {"data_options": {"n_val": 32, "n_test": 32}} if data == "moons" else {}
    train_run(model="ddpm", data=data, steps=2, batch_size=16, n=64, out=out, options=TINY,
              progress=False, plots=False, **kwargs)  # fmt: skip
    run = Run.load(out)
    assert run.likelihood == "bound"
    for method, kind in (("elbo", "bound"), ("iwae", "bound"), ("exact", "exact")):
        report = run.estimate("test", method=method, k=None if method == "exact" else 2)
        assert math.isfinite(report["test_nll"]), (method, report)
        assert report["test_estimate_kind"] == kind
        if data == "digits":
            assert math.isfinite(report["test_bpd"]), report


def test_flow_matching_run_reports_the_exact_likelihood(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_run(model="flow-matching", data="moons", steps=2, batch_size=16, n=64, out=out,
              options={"hidden": [8], "solver": "rk4", "steps": 2}, progress=False, plots=False,
              data_options={"n_val": 32, "n_test": 32})  # fmt: skip
    report = Run.load(out).estimate("test")
    assert report["test_estimate_kind"] == "exact" and math.isfinite(report["test_nll"])
