"""``python -m embrec`` runs the command line."""

import sys

from embrec.cli import main

sys.exit(main())
