"""`python -m eigen_depth ...` is the `eigen-depth` command."""
import sys

from .cli import main

sys.exit(main())
