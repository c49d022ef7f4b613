"""Downloads sent by the kernel (karvdash_hub.dashboard.sendfile) on real
sockets and files: the bytes of a range exactly, a client gone, a file that
shrank, a file sendfile refuses (read and written instead), the event loop
free meanwhile, and no descriptor left open."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest
from tornado.iostream import IOStream

from karvdash_hub.dashboard.sendfile import (
    SendfileUnsupported,
    plain_tcp,
    send_file_range,
    send_range,
)
from karvdash_hub.files.storage import DescriptorReader

MIB = 1024 * 1024


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


class Receiver:
    """The client's end of a connection, read in a thread until it closes
    (or until ``keep`` bytes, then it hangs up)."""

    def __init__(self, sock: socket.socket, keep: int | None = None):
        self.sock, self.keep = sock, keep
        self.data = bytearray()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        with self.sock:
            while self.keep is None or len(self.data) < self.keep:
                piece = self.sock.recv(MIB)
                if not piece:
                    return
                self.data += piece

    def received(self) -> bytes:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        return bytes(self.data)


@pytest.fixture
def content(tmp_path):
    data = os.urandom(24 * MIB + 12345)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path, data


async def sent(path, start, end, keep=None, send=send_range):
    server, client = socket.socketpair()
    receiver = Receiver(client, keep)
    stream = IOStream(server)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        source = descriptor if send is send_range else DescriptorReader(descriptor)
        done = await send(stream, source, start, end)
    finally:
        stream.close()
        os.close(descriptor)
    return done, receiver.received()


async def test_a_range_arrives_byte_for_byte(content):
    path, data = content
    before = open_descriptors()
    assert await sent(path, 0, len(data)) == (True, data)
    start, end = 3 * MIB + 17, 21 * MIB + 5
    assert await sent(path, start, end) == (True, data[start:end])
    assert await sent(path, len(data) - 1, len(data)) == (True, data[-1:])
    assert open_descriptors() == before


async def test_a_client_that_hangs_up_ends_the_send_without_an_error(content):
    path, data = content
    before = open_descriptors()
    done, received = await sent(path, 0, len(data), keep=2 * MIB)
    assert done is False
    assert data.startswith(received) and len(received) < len(data)
    assert open_descriptors() == before


async def test_a_file_shorter_than_asked_ends_the_send(content):
    path, data = content
    os.truncate(path, 5 * MIB)
    done, received = await sent(path, 0, len(data))
    assert (done, received) == (False, data[: 5 * MIB])


# A file of /proc/self stands for a file system without sendfile: the kernel
# refuses it (EINVAL) as it refuses such a file system, and reads it.
REFUSING = "/proc/self/limits"


async def test_a_file_sendfile_refuses_is_reported_before_any_byte():
    server, client = socket.socketpair()
    descriptor = os.open(REFUSING, os.O_RDONLY)
    try:
        with server, client, pytest.raises(SendfileUnsupported):
            await send_range(IOStream(server), descriptor, 0, 10)
    finally:
        os.close(descriptor)


async def test_a_file_sendfile_refuses_is_read_and_written_instead():
    with open(REFUSING, "rb") as f:
        data = f.read()
    start, end = 7, len(data) - 3
    assert await sent(REFUSING, start, end, send=send_file_range) == (True, data[start:end])


async def test_the_event_loop_keeps_serving_while_a_file_is_sent(content, loop_ticks):
    path, data = content
    # a slow client: the send waits on the socket, the loop does not
    server, client = socket.socketpair()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    stream = IOStream(server)
    received = bytearray()

    def slow_reader():
        with client:
            while piece := client.recv(256 * 1024):
                received.extend(piece)
                threading.Event().wait(0.002)

    thread = threading.Thread(target=slow_reader, daemon=True)
    thread.start()
    descriptor = os.open(path, os.O_RDONLY)
    try:
        assert await send_range(stream, descriptor, 0, len(data))
    finally:
        stream.close()
        os.close(descriptor)
    await asyncio.get_running_loop().run_in_executor(None, thread.join, 60)
    assert bytes(received) == data
    assert loop_ticks.count > 10


def test_only_a_plain_tcp_stream_is_reached_by_the_kernel():
    from tornado.iostream import SSLIOStream

    assert plain_tcp(IOStream.__new__(IOStream))
    assert not plain_tcp(SSLIOStream.__new__(SSLIOStream))
    assert not plain_tcp(None)
