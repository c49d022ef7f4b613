"""Forward TCP ports of this network namespace into another one.

    python3 tests/kube/nsrelay.py --netns /run/netns/NAME \\
        127.0.0.1:6443=127.0.0.1:6443 127.0.0.1:5000=198.18.1.1:5000

Each LISTEN=TARGET pair listens here (the namespace this process starts in)
and connects to TARGET from inside NAME: the listening sockets are made
first, then the process joins NAME (setns), so every connection it opens is
made there. That is how the tests and kubectl on the host reach the
apiserver and the registry of tests/kube/realnode.py without any route or
interface between the two namespaces. Prints ``ready`` once listening.

Standard library only; Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import signal
import socket
import sys

CLONE_NEWNET = 0x40000000


def setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        pass


async def _handle(target: tuple[str, int], client_r, client_w) -> None:
    try:
        up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*target), timeout=10)
    except (OSError, asyncio.TimeoutError):
        client_w.close()
        return
    try:
        await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
    finally:
        for w in (client_w, up_w):
            w.close()


async def _serve(listeners: list[tuple[socket.socket, tuple[str, int]]]) -> None:
    servers = []
    for sock, target in listeners:
        servers.append(await asyncio.start_server(lambda r, w, t=target: _handle(t, r, w), sock=sock))
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--netns", required=True, help="a network namespace file, e.g. /run/netns/NAME")
    parser.add_argument("forwards", nargs="+", metavar="LISTEN=TARGET", help="host:port=host:port")
    args = parser.parse_args(argv)
    listeners = []
    for pair in args.forwards:
        listen, _, target = pair.partition("=")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(_addr(listen))
        sock.listen(128)
        sock.setblocking(False)
        listeners.append((sock, _addr(target)))
    setns(args.netns)
    asyncio.run(_serve(listeners))
    return 0


if __name__ == "__main__":
    sys.exit(main())
