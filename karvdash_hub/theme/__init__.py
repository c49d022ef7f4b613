"""The look the hub's pages and the dashboard's pages share: the page
templates of ``templates/`` (under JupyterHub's template names, so the hub
renders its own pages with them) and the variables they read
(:mod:`karvdash_hub.theme.variables`)."""

from pathlib import Path

HUB_TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
