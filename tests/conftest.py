"""Fixtures shared by the test suite: a real hub process and a real browser."""

from __future__ import annotations

import os

import pytest

from tests import browser as browser_setup
from tests.hubprocess import start_hub
from tests.s3files import start_s3_server


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A karvdash-hub in local mode, shared by the tests of one module."""
    running = start_hub(tmp_path_factory.mktemp("hub"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (moto) on 127.0.0.1, for S3 file domains."""
    server = start_s3_server(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["local", "s3"])
def file_domain(request):
    """The kind of file domain of a Files test module's hub: folders, or a
    bucket of the S3 server (``tests.s3files.start_files_hub``)."""
    return request.param


# Module scope, not session: Playwright's sync API keeps an event loop
# running while it is open, and asyncio tests of later modules need none.
@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(browser_setup.CHROMIUM):
        pytest.fail(f"chromium not found at {browser_setup.CHROMIUM}; `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = browser_setup.launch(playwright)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()
