"""``python -m tractable`` (and ``torchrun -m tractable``) runs the command line."""

from .cli import entry

entry()
