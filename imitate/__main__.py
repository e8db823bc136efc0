"""``python -m imitate``: the ``imitate`` command."""

from imitate.cli import main

raise SystemExit(main())
