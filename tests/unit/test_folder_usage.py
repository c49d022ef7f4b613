"""The size of a private folder for the Home page: counted within a bound,
links not followed."""

from __future__ import annotations

import os

from karvdash_hub.files.usage import Usage, folder_usage


def test_counts_bytes_and_files_of_every_level(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "top.bin").write_bytes(b"x" * 100)
    (tmp_path / "a" / "b" / "deep.bin").write_bytes(b"y" * 50)
    assert folder_usage(tmp_path) == Usage(bytes=150, files=2, complete=True)


def test_an_empty_or_missing_folder_holds_nothing(tmp_path):
    assert folder_usage(tmp_path) == Usage(0, 0, True)
    assert folder_usage(tmp_path / "never-made") == Usage(0, 0, True)


def test_links_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"z" * 10_000)
    home = tmp_path / "home"
    home.mkdir()
    os.symlink(outside, home / "link")
    usage = folder_usage(home)
    assert usage.files == 1 and usage.bytes < 10_000 and usage.complete


def test_the_count_stops_at_its_bound_and_says_so(tmp_path):
    for i in range(10):
        (tmp_path / f"f{i}").write_bytes(b"x")
    assert folder_usage(tmp_path, max_entries=4) == Usage(bytes=4, files=4, complete=False)
    ticks = iter(range(100))
    assert folder_usage(tmp_path, max_seconds=2, clock=lambda: next(ticks)).complete is False
