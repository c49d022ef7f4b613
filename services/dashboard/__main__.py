"""``python -m karvdash_dashboard``: run the dashboard service."""

from .app import main

main()
