import sys

from fpsolver.cli import main

sys.exit(main())
