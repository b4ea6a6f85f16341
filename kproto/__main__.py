"""``python -m kproto``: the ``kproto`` command line (:mod:`kproto_cli`). Only run as a program:
``import kproto`` never imports this module, so the sans-I/O core stays free of I/O."""
from kproto_cli.main import main

raise SystemExit(main())
