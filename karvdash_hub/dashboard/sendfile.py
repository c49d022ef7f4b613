"""A file's bytes sent by the kernel (``sendfile(2)``) on a connection taken
over from Tornado, which has no sendfile of its own.

No byte of the file passes through Python: the kernel moves it from the page
cache to the socket. The calls run in the thread pool (a file not yet in
the page cache is read from the disk inside the call, and the event loop
must not wait for a disk), on a socket that never blocks: a turn in the
pool sends a few MiB, waiting briefly for the socket's buffer between calls,
and the event loop waits for a client slower than that.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import time
from collections.abc import Awaitable, Callable

from tornado.iostream import IOStream, SSLIOStream, StreamClosedError

from karvdash_hub.files.downloads import CHUNK

# the most one turn in the thread pool sends (the socket's buffer takes less
# at a time: each turn makes as many calls as it needs)
BLOCK = 8 * 1024 * 1024
# the longest a turn waits for the socket's buffer to have room
PATIENCE = 0.05
# what a file system without sendfile answers before the first byte
NOT_SUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


class SendfileUnsupported(Exception):
    """The file's file system cannot send with sendfile; nothing was sent."""


def plain_tcp(stream) -> bool:
    """Whether the kernel can move bytes between a file and this
    connection's socket, either way (sendfile, splice): a plain TCP stream
    (TLS encrypts in Python, past the kernel)."""
    return isinstance(stream, IOStream) and not isinstance(stream, SSLIOStream)


async def send_file_range(stream: IOStream, reader, start: int, end: int) -> bool:
    """Send bytes [start, end) of ``reader`` (a :class:`FileReader` with a
    descriptor) on ``stream``: by the kernel, or read in the thread pool and
    written where its file system refuses sendfile. True when every byte
    went out."""
    try:
        return await send_range(stream, reader.descriptor, start, end)
    except SendfileUnsupported:
        return await send_read_range(reader, start, end, stream.write)


async def send_read_range(reader, start: int, end: int, send: Callable[[bytes], Awaitable]) -> bool:
    """Send bytes [start, end) of ``reader`` with ``send``, CHUNK at a time,
    each piece read in the thread pool while the one before goes out; False
    if the client went away (``send`` raised StreamClosedError) or the file
    shrank."""
    loop = asyncio.get_running_loop()

    def read(position):
        return loop.run_in_executor(None, reader.read, position, min(CHUNK, end - position))

    position = start
    reading = read(position) if position < end else None
    while reading is not None:
        data = await reading
        if not data:
            return False  # the file shrank while we sent it
        position += len(data)
        reading = read(position) if position < end else None
        try:
            await send(data)
        except StreamClosedError:
            if reading is not None:
                await reading  # never close the file under a running read
            return False
    return True


async def send_range(stream: IOStream, descriptor: int, start: int, end: int) -> bool:
    """Send bytes [start, end) of the open file ``descriptor`` on ``stream``
    (detached from its HTTP connection, its headers already sent). True when
    every byte went out; False if the client went away or the file shrank;
    raises :class:`SendfileUnsupported` if the first call was refused."""
    loop = asyncio.get_running_loop()
    # a number of our own for the socket: Tornado closes its one when the
    # client hangs up, and a number closed under a running call could be
    # given to another file meanwhile
    socket = os.dup(stream.socket.fileno())
    try:
        position = start
        while position < end:
            await writable(loop, socket)
            try:
                sent = await loop.run_in_executor(None, send_some, socket, descriptor, position, end)
            except OSError as error:
                if position == start and error.errno in NOT_SUPPORTED:
                    raise SendfileUnsupported(os.strerror(error.errno)) from None
                return False  # reset or broken pipe: the client is gone
            if sent == 0:
                return False  # the file ended before its size as it was when opened
            position += sent
        return True
    finally:
        os.close(socket)


def send_some(socket: int, descriptor: int, position: int, end: int) -> int:
    """Send from ``position`` up to BLOCK bytes, in as many calls as the
    socket's buffer needs, waiting for it at most PATIENCE in all (a slow
    client is then waited for by the event loop, not by a thread); the
    number of bytes sent, 0 when the file ends early."""
    total = 0
    poller = select.poll()
    poller.register(socket, select.POLLOUT)
    deadline = time.monotonic() + PATIENCE
    while total < BLOCK and position + total < end:
        try:
            sent = os.sendfile(socket, descriptor, position + total, min(BLOCK - total, end - position - total))
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                break
            continue
        if sent == 0:
            break
        total += sent
    return total


async def writable(loop: asyncio.AbstractEventLoop, socket: int) -> None:
    """Until the socket's buffer has room (or the connection is broken,
    which the next call reports)."""
    await until_ready(loop.add_writer, loop.remove_writer, socket)


async def until_ready(watch, unwatch, socket: int) -> None:
    """Until the event loop sees ``socket`` ready, as ``watch`` (its
    ``add_reader`` or ``add_writer``) asks."""
    ready = asyncio.get_running_loop().create_future()
    watch(socket, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        unwatch(socket)
