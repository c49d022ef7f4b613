"""Request bodies received by the kernel (karvdash_hub.dashboard.splice) on
real sockets and files: Tornado's buffered bytes first and the rest byte for
byte, a client gone midway, a file splice refuses (read and written
instead), the answer written back, the event loop free meanwhile, no
descriptor left open, and the private parts of Tornado it relies on."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

from tornado.iostream import IOStream

from karvdash_hub.dashboard.splice import receive_range, send_all, take_over
from karvdash_hub.files.storage import DescriptorWriter

MIB = 1024 * 1024


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


class Sender:
    """The client's end: sends ``data`` in pieces from a thread (hanging up
    after ``keep`` bytes if given), then reads the answer until closed."""

    def __init__(self, sock: socket.socket, data: bytes, keep: int | None = None, pause: float = 0.0):
        self.sock, self.data, self.keep, self.pause = sock, data, keep, pause
        self.answer = bytearray()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        with self.sock:
            end = len(self.data) if self.keep is None else self.keep
            for start in range(0, end, 3 * MIB + 7):
                self.sock.sendall(self.data[start:min(start + 3 * MIB + 7, end)])
                if self.pause:
                    threading.Event().wait(self.pause)
            if self.keep is not None:
                return
            while piece := self.sock.recv(65536):
                self.answer += piece

    def done(self) -> bytes:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        return bytes(self.answer)


def reading_headers(server: socket.socket):
    """A server-side IOStream as Tornado reads a request's headers: waiting
    on the loop for them (the first byte stands for them), so that once they
    are in it keeps listening, idle, and reads whatever arrives next."""
    stream = IOStream(server)
    return stream, stream.read_bytes(1)


async def received(tmp_path, data: bytes, position: int = 0, keep=None, pause=0.0, flags=0):
    server, client = socket.socketpair()
    stream, headers = reading_headers(server)
    sender = Sender(client, b"H" + data, keep=None if keep is None else keep + 1, pause=pause)
    await headers
    target = tmp_path / "staged.part"
    target.write_bytes(b"\0" * position)
    writer = DescriptorWriter(target)
    if flags:
        os.close(writer.descriptor)
        writer.descriptor = os.open(target, os.O_WRONLY | flags)
    try:
        buffered = take_over(stream)
        count = await receive_range(stream, buffered, writer, position, len(data))
        if keep is None:
            assert await send_all(stream, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    finally:
        writer.sync()
        writer.close()
        stream.close()
    answer = sender.done()
    return count, target.read_bytes()[position:], answer


async def test_a_body_arrives_byte_for_byte_at_its_offset(tmp_path):
    data = os.urandom(40 * MIB + 12345)
    before = open_descriptors()
    count, written, answer = await received(tmp_path, data, position=5 * MIB + 3)
    assert (count, written == data) == (len(data), True)
    assert answer == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert open_descriptors() == before


async def test_a_body_already_in_tornados_buffer_is_taken_from_it(tmp_path):
    data = os.urandom(200_000)
    server, client = socket.socketpair()
    with client:
        stream, headers = reading_headers(server)
        client.sendall(b"H")
        await headers
        client.sendall(data)
        await asyncio.sleep(0.1)  # Tornado, idle, reads what arrives into its buffer
        buffered = take_over(stream)
        assert 0 < len(buffered) and data.startswith(buffered)
        target = tmp_path / "staged.part"
        target.touch()
        writer = DescriptorWriter(target)
        try:
            assert await receive_range(stream, buffered, writer, 0, len(data)) == len(data)
        finally:
            writer.close()
            stream.close()
    assert target.read_bytes() == data


async def test_tornado_reads_nothing_more_once_taken_over(tmp_path):
    server, client = socket.socketpair()
    with client:
        stream, headers = reading_headers(server)
        client.sendall(b"H")
        await headers
        take_over(stream)
        client.sendall(b"x" * 1000)
        await asyncio.sleep(0.1)
        assert stream._read_buffer_size == 0
        assert server.recv(2000, socket.MSG_PEEK) == b"x" * 1000
        stream.close()


async def test_a_client_that_hangs_up_keeps_what_arrived(tmp_path):
    data = os.urandom(20 * MIB)
    before = open_descriptors()
    count, written, _ = await received(tmp_path, data, keep=7 * MIB + 11)
    assert count == 7 * MIB + 11 and written == data[:count]
    assert open_descriptors() == before


async def test_a_file_splice_refuses_is_written_through_a_buffer(tmp_path):
    # the kernel refuses to splice into a file opened to append (EINVAL), as
    # into a file system without splice; appending writes at its end anyway
    data = os.urandom(12 * MIB + 5)
    count, written, _ = await received(tmp_path, data, flags=os.O_APPEND)
    assert (count, written == data) == (len(data), True)


async def test_the_event_loop_keeps_serving_while_a_body_arrives(tmp_path, loop_ticks):
    data = os.urandom(12 * MIB)
    count, written, _ = await received(tmp_path, data, pause=0.05)
    assert (count, written == data) == (len(data), True)
    assert loop_ticks.count > 50


async def test_an_answer_to_a_client_gone_says_so():
    server, client = socket.socketpair()
    client.close()
    stream = IOStream(server)
    take_over(stream)
    try:
        assert await send_all(stream, b"x" * (4 * MIB)) is False
    finally:
        stream.close()
