"""A single-user server for the spawn queue's tests: it starts listening
(and answering 200 to every GET) only once the gate file named by its first
argument exists, so a test decides how long a start holds its place. The
arguments the spawner adds after it are ignored."""

import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


class Answer(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"gated test server\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def main() -> None:
    gate = Path(sys.argv[1])
    try:
        while not gate.exists():
            time.sleep(0.1)
        url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
        ThreadingHTTPServer((url.hostname, url.port), Answer).serve_forever()
    except KeyboardInterrupt:  # the spawner stops it with SIGINT
        pass


if __name__ == "__main__":
    main()
