"""``python -m karvdash_hub.dashboard``: run the dashboard service."""

from .app import main

main()
