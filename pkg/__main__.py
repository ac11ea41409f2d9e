"""``python -m trntile`` is the same as the ``trntile`` command."""

from trntile.sw.cli import main

raise SystemExit(main())
