"""JupyterHub configuration of karvdash-hub.

All deployment settings come from one values file ($KARVDASH_VALUES) and
KARVDASH_* environment variables (see karvdash_hub/core/settings.py); add plain
JupyterHub settings below the call to override what it chose.
"""

from karvdash_hub.core.settings import SettingsError
from karvdash_hub.hub.config import configure, main_config_error
from karvdash_hub.hub.profiles import ProfileError

c = get_config()  # noqa: F821 - provided by JupyterHub

try:
    configure(c)
except (SettingsError, ProfileError) as error:
    main_config_error(error)
