"""Where the project's own files are, installed or checked out.

The hub configuration, the shipped spawner profiles and the service templates
live beside the package (the repository's top level), so an editable install
and the container image (which installs the checked-out tree) find them the
same way.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT_ROOT = PACKAGE_DIR.parent
HUB_CONFIG_FILE = PROJECT_ROOT / "jupyterhub_config.py"
SHIPPED_PROFILES_DIR = PROJECT_ROOT / "spawner_profiles"
SHIPPED_TEMPLATES_DIR = PROJECT_ROOT / "service_templates"
