"""The karvdash dashboard: a hub-managed service for files, services,
templates, datasets and images (import name ``karvdash_hub.dashboard``)."""
