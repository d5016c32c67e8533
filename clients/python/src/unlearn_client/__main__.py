"""`python -m unlearn_client ...` runs the `unlearn` command."""

import sys

from unlearn_client.cli import main

sys.exit(main())
