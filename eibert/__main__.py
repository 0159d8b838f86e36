"""`python -m eibert`: the same entry point as the `eibert` console script."""

import sys

from eibert.cli import main

sys.exit(main())
