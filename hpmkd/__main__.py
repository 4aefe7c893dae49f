"""``python -m hpmkd`` runs the command line."""

import sys

from hpmkd.cli import main

sys.exit(main())
