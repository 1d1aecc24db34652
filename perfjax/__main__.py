"""``python -m perfjax``: the same command line as the ``perfjax`` script."""

from perfjax._cli import main

raise SystemExit(main())
