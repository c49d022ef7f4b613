"""The dashboard as a JupyterHub service: its name, where the hub's proxy
serves it, and its custom scopes.

Every feature has a read and a write scope (``custom:karvdash:files:read``,
``custom:karvdash:files:write``, ...). Users hold them all through the
``user`` role; an API token made with fewer scopes can do only that much.
"""

from __future__ import annotations

SERVICE_NAME = "karvdash"
# the dashboard's URL path on the hub's proxy (JupyterHub's rule for services)
SERVICE_PREFIX = f"/services/{SERVICE_NAME}/"
# Karvdash 2.x's API, below the service prefix (its own paths would clash
# with the dashboard's api/): base_url = https://<hub>/services/karvdash/karvdash2/api
KARVDASH2_API_PATH = "karvdash2/api/"
FEATURES = ("files", "services", "templates", "datasets", "images")
ACTIONS = {
    "read": "List and download {feature} in the dashboard.",
    "write": "Create, change and delete {feature} in the dashboard.",
}

CUSTOM_SCOPE_PREFIX = f"custom:{SERVICE_NAME}:"
# What a person or a token needs to reach the service at all.
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
# Lets karvdashctl in a notebook find where the dashboard listens.
READ_SERVICE_SCOPE = f"read:services!service={SERVICE_NAME}"


def scope(feature: str, action: str) -> str:
    if feature not in FEATURES or action not in ACTIONS:
        raise ValueError(f"no scope for {feature}:{action}")
    return f"{CUSTOM_SCOPE_PREFIX}{feature}:{action}"


def custom_scopes() -> dict[str, dict]:
    """``JupyterHub.custom_scopes`` entries of the dashboard."""
    return {
        scope(feature, action): {"description": description.format(feature=feature)}
        for feature in FEATURES
        for action, description in ACTIONS.items()
    }


def user_scopes() -> list[str]:
    """Scopes every user gets (added to the ``user`` and ``server`` roles)."""
    return [ACCESS_SCOPE, READ_SERVICE_SCOPE, *custom_scopes()]
