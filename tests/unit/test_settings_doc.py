"""docs/settings.md is generated from the traits and must be current."""

from pathlib import Path

from karvdash_hub.core import settingsdoc
from karvdash_hub.core.settings import KarvdashConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_settings_reference_is_current():
    assert DOC.read_text() == settingsdoc.render(), "run: python -m karvdash_hub.core.settingsdoc > docs/settings.md"


def test_every_setting_is_documented():
    text = DOC.read_text()
    for name in KarvdashConfig.class_own_traits(config=True):
        assert f"| `{name}` |" in text
