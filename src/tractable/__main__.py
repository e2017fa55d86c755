"""``python -m tractable`` (and ``torchrun -m tractable``) runs the command line."""

import sys

from .cli import main

sys.exit(main())
