"""``python -m training``: see ``python -m training --help``."""

import sys

from training.cli import main

raise SystemExit(main(sys.argv[1:]))
