"""Local mode's single-user command: jupyterhub-singleuser without the
import of rfc3987-syntax (half the CPU of a JupyterLab start), which
jsonschema then does without."""

import subprocess
import sys

from karvdash_hub.hub.localspawner import SERVER_COMMAND

PROBE = """
import sys
from karvdash_hub.hub.singleuser import skip_unneeded_modules
skip_unneeded_modules()
import jsonschema, jupyter_server.serverapp, jupyterhub.singleuser
checker = jsonschema.FormatChecker()
print(sys.modules["rfc3987_syntax"] is None, "iri" in checker.checkers, checker.conforms("a@b.org", "email"))
"""


def test_the_server_loads_without_rfc3987_syntax_and_jsonschema_still_checks_formats():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["True", "False", "True"]


def test_the_local_command_is_jupyterhub_singleuser_of_this_environment():
    assert SERVER_COMMAND == [sys.executable, "-m", "karvdash_hub.hub.singleuser"]
    result = subprocess.run([*SERVER_COMMAND, "--version"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip()
