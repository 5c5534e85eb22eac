"""`python -m repro` is the `repro` command."""

import sys

from repro.cli.main import main

sys.exit(main())
