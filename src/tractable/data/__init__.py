r"""Datasets, seeded splits and the preprocessing between raw data and model space.

``load(name_or_path)`` returns a :class:`Dataset` of raw ``train``/``val``/``test`` tensors and a
:class:`Preprocessor`; models see ``preprocess.train_batch(x)`` in training and
``preprocess.eval(x, generator)`` in evaluation, and :func:`nll_to_report` turns their
model-space NLLs into data-space NLL and bits/dim.

Example:
    >>> import torch, tractable as tr
    >>> ds = tr.data.load("digits")
    >>> ds.shape, ds.levels, ds.sizes()
    ((64,), 17, {'train': 1439, 'val': 179, 'test': 179})
    >>> y, ladj = ds.preprocess.eval(ds.test, torch.Generator().manual_seed(0))
    >>> bool(((y >= 0) & (y < 1)).all())
    True
"""

from .dataset import Dataset
from .dequantization import VariationalDequantizer
from .download import default_data_root, download, sha256_of
from .images import read_idx
from .preprocess import Preprocessor, fit_standardizer, nll_to_report
from .registry import describe, load, load_from_dict, names
from .toy import sample_toy, toy_modes

__all__ = [
    "Dataset",
    "Preprocessor",
    "VariationalDequantizer",
    "default_data_root",
    "describe",
    "download",
    "fit_standardizer",
    "load",
    "load_from_dict",
    "names",
    "nll_to_report",
    "read_idx",
    "sample_toy",
    "sha256_of",
    "toy_modes",
]
