"""API tokens for the dashboard: the hub's token API, with the dashboard's
access scope added to a token asked for with dashboard scopes only.

A ``custom:karvdash:*`` scope means nothing without
``access:services!service=karvdash``: the dashboard's hub login refuses a
token that cannot reach the service before any of its scopes is looked at,
and JupyterHub's custom scopes cannot imply other scopes. So a token asked
for with a dashboard scope gets the access scope with it (it lets the token
reach the dashboard, nothing more), and does what was asked for.
"""

from __future__ import annotations

from jupyterhub.apihandlers.users import UserTokenListAPIHandler

from karvdash_hub.core.scopes import ACCESS_SCOPE, CUSTOM_SCOPE_PREFIX

# scopes that already let a token reach the dashboard
REACHING_SCOPES = {ACCESS_SCOPE, "access:services"}


def with_dashboard_access(scopes: list[str]) -> list[str]:
    """``scopes`` plus the dashboard's access scope when a dashboard scope needs it."""
    wants_dashboard = any(scope.startswith(CUSTOM_SCOPE_PREFIX) for scope in scopes)
    if wants_dashboard and not REACHING_SCOPES & set(scopes):
        return [*scopes, ACCESS_SCOPE]
    return scopes


class DashboardTokenListHandler(UserTokenListAPIHandler):
    """``POST /hub/api/users/:name/tokens`` (the Token page's request too)."""

    def get_json_body(self):
        body = super().get_json_body()
        if isinstance(body, dict) and isinstance(body.get("scopes"), list):
            if all(isinstance(scope, str) for scope in body["scopes"]):
                body["scopes"] = with_dashboard_access(body["scopes"])
        return body


def token_handlers() -> list[tuple[str, type]]:
    """Hub routes ahead of JupyterHub's own (an authenticator's come first)."""
    return [(r"/api/users/([^/]+)/tokens", DashboardTokenListHandler)]
