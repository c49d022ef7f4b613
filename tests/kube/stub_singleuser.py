#!/usr/bin/env python3
"""The smallest single-user server a hub accepts: it listens where
JupyterHub told it to (``JUPYTERHUB_SERVICE_URL``) and answers every GET
with 200 and its user's name. Spawn storms (bench/spawnkube.py, the storm
test of tests/integration/test_spawner_kube.py) run it in place of
JupyterLab, so that they measure the spawner, the hub and Kubernetes, not
JupyterLab's start-up (~3 CPU-seconds each). Command-line arguments
(``--ip``, ``--port``, the profiles' ``--ServerApp...``) are ignored.
Standard library only: a start costs one interpreter start-up.
"""

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Answer(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"stub single-user server of {os.environ.get('JUPYTERHUB_USER', '')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # a storm's worth of access lines would only cost CPU


def main() -> None:
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    server = ThreadingHTTPServer((url.hostname, url.port), Answer)
    print(f"listening on {url.hostname}:{url.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
