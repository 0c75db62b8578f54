"""``python -m genesis`` runs the ``genesis`` command."""
from .cli import main

raise SystemExit(main())
