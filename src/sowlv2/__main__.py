"""``python -m sowlv2``."""

import sys

from .cli import main

sys.exit(main())
