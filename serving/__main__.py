"""``python -m serving``: serve, migrate, query the prediction log."""

import sys

from serving.cli import main

sys.exit(main())
