"""Headless Debian chromium driven by Playwright (its own browser download
is not used: the machines reach package registries only)."""

from __future__ import annotations

import os
import shutil

CHROMIUM = os.environ.get("KARVDASH_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Chromium's background services would try to reach the internet; without
# these flags it keeps retrying against the closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
