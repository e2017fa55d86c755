r"""Comparison reports across runs (``tractable compare``): one table with the best value per
dataset marked (:mod:`tractable.report.table`) and the figures, as Markdown and as one
self-contained HTML file (:mod:`tractable.report.compare`)."""

from .compare import compare_runs
from .table import COLUMNS, Column, markdown_table

__all__ = ["COLUMNS", "Column", "compare_runs", "markdown_table"]
