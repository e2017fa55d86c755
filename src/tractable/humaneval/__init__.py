r"""Human evaluation of image samples in the browser: the generative Turing test (one image, real
or generated?) and side-by-side comparisons of two models, with real-vs-noise attention checks.

:func:`pool_from_runs` writes the images of trained runs into a new SQLite database,
:func:`make_app` / :func:`serve` run the web application (Starlette and uvicorn, the
``humaneval`` extra) on it, and :func:`results` computes the fraction of answers fooled per
model (Wilson intervals) and Bradley–Terry scores (bootstrap intervals).

Example:
    >>> from tractable.humaneval import wilson_interval
    >>> [round(v, 4) for v in wilson_interval(15, 148)]   # Newcombe (1998), Table I
    [0.0624, 0.1605]
"""

from .pool import labels, pool_from_runs
from .results import format_results, results
from .stats import bradley_terry, wilson_interval
from .storage import RefusedError, answered, create_pool, new_session, progress, store_answer

__all__ = [
    "RefusedError",
    "answered",
    "bradley_terry",
    "create_pool",
    "format_results",
    "labels",
    "new_session",
    "pool_from_runs",
    "progress",
    "results",
    "store_answer",
    "wilson_interval",
]
