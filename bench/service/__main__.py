"""`python -m bench.service`: see the package docstring."""

from bench.service.cli import main

raise SystemExit(main())
