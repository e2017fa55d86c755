r"""Training, checkpoints and run directories.

:func:`fit` trains any ``nn.Module`` with ``loss(batch)``; :func:`resume` continues a run from
its latest checkpoint, bit for bit; :func:`save_model` / :func:`load_model` store and rebuild
a model as ``config.json`` + ``model.safetensors``; :func:`load_state` reads safetensors or
JSON and refuses pickles. Under ``torchrun`` the same code trains data parallel.
"""

from .checkpoint import has_checkpoint, load_latest_checkpoint, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .distributed import DistContext, setup_distributed
from .evaluate import evaluate_loss
from .loop import DivergenceError, fit, resume
from .schedule import LRSchedule, clip_gradients, make_optimizer
from .serialization import (
    CheckpointError,
    atomic_write_bytes,
    atomic_write_json,
    load_model,
    load_state,
    read_json,
    save_model,
)

__all__ = [
    "CheckpointError",
    "DistContext",
    "DivergenceError",
    "LRSchedule",
    "TrainConfig",
    "atomic_write_bytes",
    "atomic_write_json",
    "clip_gradients",
    "evaluate_loss",
    "fit",
    "has_checkpoint",
    "load_latest_checkpoint",
    "load_model",
    "load_state",
    "make_optimizer",
    "read_checkpoint",
    "read_json",
    "resume",
    "save_checkpoint",
    "save_model",
    "setup_distributed",
]
