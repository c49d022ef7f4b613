"""A request body received by the kernel (``splice(2)``) on a connection
taken over from Tornado: from the socket into a pipe, from the pipe into
the staged file at its offset.

No byte of the body passes through Python (Tornado's path copies each one
several times and hands it on 1 MiB at a time). The calls run in the
thread pool, each turn moving a few MiB and waiting briefly for the socket
between calls; the event loop waits for a client slower than that. The
pipe is emptied into the file at the end of every turn, so what a turn
reports is on the file.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import select
import time

from tornado.iostream import IOStream

from .sendfile import until_ready, writable

# the most one turn in the thread pool moves
BLOCK = 8 * 1024 * 1024
# the longest a turn waits for the socket to have bytes
PATIENCE = 0.05
# the pipe between socket and file (Linux's default is 64 KiB)
PIPE_SIZE = 1024 * 1024
# what a file system without splice answers (its bytes are then read and written)
NOT_SUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


def take_over(stream: IOStream) -> bytes:
    """Stop Tornado watching the socket of ``stream`` (detached from its HTTP
    connection) and take what it read past the headers.

    Tornado keeps listening on an idle stream (to notice a close) and reads
    whatever arrives into its buffer: with the kernel reading the same
    socket, a body's bytes would go either way. Its buffer is private
    (``_read_buffer``, ``_read_buffer_size``: tests/unit/test_splice.py
    fails if Tornado renames them)."""
    stream.io_loop.remove_handler(stream.fileno())
    size = stream._read_buffer_size
    return bytes(stream._read_buffer[:size]) if size else b""


async def receive_range(stream: IOStream, buffered: bytes, writer, position: int, length: int) -> int:
    """Receive ``length`` bytes of a request body into the file of
    ``writer`` (a ``DescriptorWriter``) from ``position``: first those of
    ``buffered`` (see :func:`take_over`), then from the socket of ``stream``.
    The number of bytes now on the file: fewer than ``length`` when the
    client went away. Raises OSError when the file cannot take them."""
    loop = asyncio.get_running_loop()
    first = memoryview(buffered)[:length]
    received = 0
    while received < len(first):
        received += await loop.run_in_executor(None, writer.write, first[received:], position + received)
    if received == length:
        return received
    # a number of our own for the socket (see sendfile.send_range)
    socket = os.dup(stream.socket.fileno())
    pipe = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            fcntl.fcntl(pipe[1], fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # a smaller pipe (a limit of the machine) only means more calls
        while received < length:
            await until_ready(loop.add_reader, loop.remove_reader, socket)
            moved, ended = await loop.run_in_executor(
                None, splice_some, socket, pipe, writer.descriptor, position + received, length - received
            )
            received += moved
            writer.wrote(moved)
            if ended:
                break  # the client closed or reset the connection
        return received
    finally:
        for descriptor in (*pipe, socket):
            os.close(descriptor)


async def send_all(stream: IOStream, data: bytes) -> bool:
    """Write ``data`` on the socket of a stream taken over (Tornado no longer
    watches it); False if the client went away."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(stream.socket.fileno(), view):]
        except BlockingIOError:
            await writable(loop, stream.socket.fileno())
        except OSError:
            return False
    return True


def splice_some(socket: int, pipe: tuple[int, int], file: int, position: int, left: int) -> tuple[int, bool]:
    """Move up to BLOCK bytes (at most ``left``) from ``socket`` to ``file``
    at ``position``, waiting for the socket at most PATIENCE in all; the
    bytes moved, and whether the client is gone."""
    moved = 0
    poller = select.poll()
    poller.register(socket, select.POLLIN)
    deadline = time.monotonic() + PATIENCE
    while moved < BLOCK and moved < left:
        try:
            count = os.splice(socket, pipe[1], min(PIPE_SIZE, left - moved), flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
        except BlockingIOError:
            wait = deadline - time.monotonic()
            if wait <= 0 or not poller.poll(wait * 1000):
                return moved, False
            continue
        except OSError as error:
            if error.errno in (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT):
                return moved, True
            raise
        if count == 0:
            return moved, True
        empty(pipe[0], file, position + moved, count)
        moved += count
    return moved, False


def empty(pipe: int, file: int, position: int, count: int) -> None:
    """Move ``count`` bytes from ``pipe`` into ``file`` at ``position``."""
    done = 0
    while done < count:
        try:
            done += os.splice(pipe, file, count - done, offset_dst=position + done, flags=os.SPLICE_F_MOVE)
        except OSError as error:
            if error.errno not in NOT_SUPPORTED:
                raise
            # a file system without splice: through a buffer instead
            data = os.read(pipe, count - done)
            view = memoryview(data)
            while view:
                written = os.pwrite(file, view, position + done)
                done += written
                view = view[written:]

