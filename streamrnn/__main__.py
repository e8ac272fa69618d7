"""``python -m streamrnn``: the ``streamrnn`` command."""

import sys

from .cli import main

sys.exit(main())
