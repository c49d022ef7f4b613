"""The karvdash admission webhook (import name ``karvdash_hub.webhook``)."""
