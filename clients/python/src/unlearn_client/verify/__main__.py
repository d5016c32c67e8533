"""``python -m unlearn_client.verify`` (usage in unlearn_client.verify.cli)."""

import sys

from unlearn_client.verify.cli import main

sys.exit(main())
