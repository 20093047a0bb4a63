"""``python -m hookline``: the same as the ``hookline`` command. Only an entry point: the
command itself lives in the composition root (``composition/cli.py``)."""

import sys

from composition.cli import main

sys.exit(main())
