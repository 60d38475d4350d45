"""Entry point for ``python -m mailopsd``."""

import sys

from mailopsd import cli

sys.exit(cli.main())
