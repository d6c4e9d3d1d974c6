"""``python -m unifyparams.conformance``: run the conformance suite (see runner.py)."""

import sys

from .runner import main

sys.exit(main())
