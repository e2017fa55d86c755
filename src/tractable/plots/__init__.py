r"""Every figure of the library: training curves, 2D densities, scatter plots, image grids
(:mod:`tractable.plots.figures`) and the side-by-side figures of comparison reports
(:mod:`tractable.plots.compare`). Pure drawing: callers pass numbers, nothing here loads a run.
"""

from . import compare
from .figures import (
    density_2d,
    figure,
    image_shape_of,
    mosaic,
    read_curves,
    save,
    save_image_grid,
    scatter_2d,
    training_curves,
)

__all__ = [
    "compare",
    "density_2d",
    "figure",
    "image_shape_of",
    "mosaic",
    "read_curves",
    "save",
    "save_image_grid",
    "scatter_2d",
    "training_curves",
]
