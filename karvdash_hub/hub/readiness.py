"""The hub's side of ``karvdash-hub`` printing the address only when it
works: JupyterHub's proxy answers 404 to every page until the hub has added
its routes, seconds after the proxy starts (the dashboard starts first)."""

from __future__ import annotations

import contextlib
import os

from jupyterhub.proxy import ConfigurableHTTPProxy
from traitlets import Integer


class AnnouncingProxy(ConfigurableHTTPProxy):
    """configurable-http-proxy, which writes one byte to ``ready_fd`` once the
    hub's routes are in place (the launcher waits on the other end of that
    pipe; asking the proxy again and again would log a 404 each time)."""

    ready_fd = Integer(
        -1,
        config=True,
        help="Write end of the launcher's pipe, told once when the routes are set; -1: nobody waits.",
    )

    async def check_routes(self, *args, **kwargs):
        result = await super().check_routes(*args, **kwargs)
        if self.ready_fd >= 0:
            fd, self.ready_fd = self.ready_fd, -1
            # a launcher that is gone (EPIPE) has nobody to tell
            with contextlib.suppress(OSError):
                os.write(fd, b"1")
            os.close(fd)
        return result
