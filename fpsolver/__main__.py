"""Entry point of ``python -m fpsolver``: runs the command-line interface."""

import sys

from fpsolver.cli import main

sys.exit(main())
