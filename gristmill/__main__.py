"""``python -m gristmill ...``: the ``gristmill`` command."""

from gristmill.pipeline.cli import main

raise SystemExit(main())
