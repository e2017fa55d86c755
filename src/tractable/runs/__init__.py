r"""Runs: train a model on a dataset into a run directory, and load, evaluate, sample and plot it.

:func:`train_run` and :func:`continue_run` (:mod:`tractable.runs.training`) write a run;
:class:`Run` (:mod:`tractable.runs.run`) loads one with a single call and offers ``estimate``,
``log_likelihood``, ``sample``, ``evaluate`` (sample metrics) and ``plot``; :func:`score_run`
(:mod:`tractable.runs.anomaly`) scores new data with a run. The command line and the reports
are thin layers over these.

Example:
    >>> import tempfile, tractable.runs as runs
    >>> out = tempfile.mkdtemp() + "/run"
    >>> m = runs.train_run(model="maf", data="moons", steps=20, n=512, out=out, progress=False,
    ...                    options={"hidden": [16], "transforms": 2}, plots=False)
    >>> runs.Run.load(out).estimate("test")["test_nll"] == m["test_nll"]
    True
"""

from .anomaly import read_rows, score_run
from .figures import picture, plot_run, write_samples
from .run import Run, count_parameters
from .sample_eval import evaluate_run
from .setup import EVAL_SEED, Setup, prepare
from .training import DEFAULT_DATA, DEFAULT_MODEL, continue_run, default_out, train_run

__all__ = [
    "DEFAULT_DATA",
    "DEFAULT_MODEL",
    "EVAL_SEED",
    "Run",
    "Setup",
    "continue_run",
    "count_parameters",
    "default_out",
    "evaluate_run",
    "picture",
    "plot_run",
    "prepare",
    "read_rows",
    "score_run",
    "train_run",
    "write_samples",
]
