"""``python -m hookline``: the same as the ``hookline`` command."""

import sys

from hookline.cli import main

sys.exit(main())
