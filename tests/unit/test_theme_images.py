"""The deployment's logo and favicon: what the settings accept, and the
image files the hub reads at start-up."""

from __future__ import annotations

import pytest

from karvdash_hub.core.settings import SettingsError, load_settings
from karvdash_hub.theme.images import (
    THEME_PATH,
    image_type,
    image_url,
    load_theme_images,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"></svg>'


def settings(tmp_path, **values):
    return load_settings(environ={"KARVDASH_STATE_DIR": str(tmp_path), **{f"KARVDASH_{k}": v for k, v in values.items()}})


@pytest.mark.parametrize("data, kind", [
    (PNG, "image/png"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 16, "image/jpeg"),
    (b"GIF89a" + b"\x00" * 8, "image/gif"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"\x00\x00\x01\x00\x01\x00", "image/x-icon"),
    (SVG, "image/svg+xml"),
    (b"\xef\xbb\xbf  <svg viewBox='0 0 1 1'/>", "image/svg+xml"),
    (b"<html><svg></svg></html>", ""),
    (b"%PDF-1.7", ""),
    (b"\xff\xfe<\x00s\x00", ""),
    (b"", ""),
])
def test_image_types_are_told_by_content(data, kind):
    assert image_type(data) == kind


def test_urls_are_shown_as_they_are_and_files_from_the_hub(tmp_path):
    given = settings(tmp_path, DASHBOARD_LOGO="https://cdn.example.org/logo.svg", DASHBOARD_FAVICON="/srv/theme/icon.png")
    assert image_url(given, "logo") == "https://cdn.example.org/logo.svg"
    assert image_url(given, "favicon") == THEME_PATH + "favicon" == "/hub/theme/favicon"
    assert image_url(settings(tmp_path), "logo") == ""


@pytest.mark.parametrize("value", ["logo.png", "ftp://example.org/logo.png", "javascript:alert(1)", "https:///nohost.png"])
def test_a_logo_is_a_url_or_an_absolute_path(tmp_path, value):
    with pytest.raises(SettingsError) as refused:
        settings(tmp_path, DASHBOARD_LOGO=value)
    assert refused.value.setting == "dashboardLogo"


def test_the_files_are_read_and_checked(tmp_path):
    (tmp_path / "logo.svg").write_bytes(SVG)
    (tmp_path / "icon.png").write_bytes(PNG)
    images = load_theme_images(settings(tmp_path, DASHBOARD_LOGO=str(tmp_path / "logo.svg"), DASHBOARD_FAVICON=str(tmp_path / "icon.png")))
    assert images["logo"].content == SVG and images["logo"].content_type == "image/svg+xml"
    assert images["favicon"].content_type == "image/png"
    assert images["logo"].etag != images["favicon"].etag
    assert load_theme_images(settings(tmp_path, DASHBOARD_LOGO="https://example.org/logo.png")) == {}


def test_a_missing_large_or_foreign_file_names_its_setting(tmp_path):
    (tmp_path / "big.png").write_bytes(PNG + b"\x00" * (128 * 1024))
    (tmp_path / "notes.txt").write_text("not an image")
    cases = [
        ("DASHBOARD_LOGO", str(tmp_path / "missing.png"), "dashboardLogo", "cannot read"),
        ("DASHBOARD_FAVICON", str(tmp_path / "big.png"), "dashboardFavicon", "at most 128 KiB"),
        ("DASHBOARD_LOGO", str(tmp_path / "notes.txt"), "dashboardLogo", "is not a PNG, JPEG, GIF, WebP, ICO or SVG image"),
        ("DASHBOARD_LOGO", str(tmp_path), "dashboardLogo", "cannot read"),
    ]
    for variable, value, setting, words in cases:
        with pytest.raises(SettingsError) as refused:
            load_theme_images(settings(tmp_path, **{variable: value}))
        assert refused.value.setting == setting
        assert words in str(refused.value)
    # the same big file is a fine logo (up to 512 KiB)
    assert load_theme_images(settings(tmp_path, DASHBOARD_LOGO=str(tmp_path / "big.png")))["logo"].content_type == "image/png"
