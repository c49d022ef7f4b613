"""The Home page: what a person has at a glance (servers, services,
datasets, the space their private folder takes) and, for someone new, the
next step. Every part is asked for at once; a part that cannot be had (no
Kubernetes, datasets disabled, the hub unreachable) says why and the rest
still shows."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from karvdash_hub.core.errors import KarvdashError

from .context import DashboardContext
from .handlers import PageHandler


async def hub_servers(context: DashboardContext, username: str) -> list[dict]:
    """The user's servers, stopped ones too, from the hub's API with the
    dashboard's token (its role holds ``read:servers``)."""
    url = f"{context.hub.api_url.rstrip('/')}/users/{quote(username, safe='')}?include_stopped_servers=true"
    try:
        response = await AsyncHTTPClient().fetch(
            url, headers={"Authorization": f"token {context.hub.api_token}"}, request_timeout=10
        )
    except HTTPClientError as error:
        raise KarvdashError(502, f"the hub did not list the servers ({error.code})") from None
    except OSError as error:
        raise KarvdashError(502, f"the hub cannot be reached: {error}") from None
    servers = json.loads(response.body).get("servers") or {}
    listed = []
    for name, server in sorted(servers.items()):
        state = "ready" if server.get("ready") else ("pending" if server.get("pending") else "stopped")
        listed.append(
            {
                "name": name,
                "state": state,
                "url": server.get("url") or "",
                "profile": (server.get("user_options") or {}).get("profile", ""),
                "started": server.get("started") if state != "stopped" else None,
                "last_activity": server.get("last_activity"),
            }
        )
    return listed


async def section(part) -> dict:
    """One part of the page: {"items": ...} or {"problem": why it is missing}."""
    try:
        return {"items": await part}
    except KarvdashError as error:
        return {"problem": error.message}


class HomeHandler(PageHandler):
    async def get(self):
        user = await self.acting_user()
        context = self.context
        stores = context.stores

        async def services():
            store = await stores.instances()
            return [i.to_json() for i in await store.list(user, context.settings.user_namespace(user))]

        async def datasets():
            return await (await stores.datasets()).list(user)

        async def usage():
            return (await self.blocking(context.storage.usage, user)).to_json()

        parts = [section(hub_servers(context, user)), section(services()), section(usage())]
        if context.settings.datasetsAvailable:
            parts.append(section(datasets()))
        servers, services_part, usage_part, *rest = await asyncio.gather(*parts)
        datasets_part = rest[0] if rest else None
        next_steps = []
        # the hub keeps a stopped default server for everyone: "no server" is none running
        if "items" in servers and all(server["state"] == "stopped" for server in servers["items"]):
            next_steps.append(("start-server", "Start a server", "for JupyterLab or another profile", context.hub.hub_prefix + "spawn/" + quote(user, safe="")))
        if "items" in usage_part and usage_part["items"]["files"] == 0:
            next_steps.append(("upload-files", "Upload files", "into your private folder", self.page_url("files/private/")))
        self.render_page(
            "home.html",
            karvdash_active="home",
            home_user=user,
            servers=servers,
            services=services_part,
            datasets=datasets_part,
            usage=usage_part,
            next_steps=next_steps,
        )


def handlers(context: DashboardContext) -> list:
    return [("", HomeHandler)]


def openapi(context: DashboardContext) -> dict:
    # a page only: the servers, services and datasets have their own API routes
    return {}
