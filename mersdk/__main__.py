"""``python -m mersdk`` is the ``mersdk`` command."""

import sys

from .cli import main

sys.exit(main())
