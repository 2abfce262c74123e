"""``python -m stylepass.core.cli``: the ``stylepass`` command line (as the add-on starts it in the
core's Python)."""

import sys

from . import main

sys.exit(main())
