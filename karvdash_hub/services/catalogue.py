"""The templates a user can start services from: the shipped and the admin
template folders, read from disk, combined with the user's own templates
(which ``store.py`` reads from Kubernetes). Parsing is ``templates.py``'s.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from karvdash_hub.core.errors import KarvdashError

from .templates import (
    MAX_TEMPLATE_BYTES,
    TEMPLATE_SUFFIX,
    ServiceTemplate,
    TemplateError,
    parse_template,
    template_id_from_filename,
)

log = logging.getLogger("karvdash.templates")
# files whose conversion notes were logged, by version: folders are read
# for every list, the warnings are said once
_NOTED: set[tuple[str, int]] = set()
_NOTED_MOST = 1000


def read_template_file(storage, domain: str, path: str, user: str) -> str:
    """The text of the template file ``path`` in ``user``'s ``domain``
    (``storage``: the file domains' ``FileStorage``; blocking)."""
    if not path.endswith(TEMPLATE_SUFFIX):
        raise KarvdashError(400, f"template files end with {TEMPLATE_SUFFIX}")
    return storage.read_text(user, domain, path, "a template", MAX_TEMPLATE_BYTES)


def load_folder(
    folder: Path, source: str, disabled: Iterable[str] = ()
) -> tuple[dict[str, ServiceTemplate], list[str]]:
    """Templates of one folder by id, and one message per file that failed.

    A bad file does not hide the good ones; its message names the file.
    """
    disabled = set(disabled)
    templates, problems = {}, []
    if not folder.is_dir():
        return templates, problems
    for path in sorted(folder.glob("*" + TEMPLATE_SUFFIX)):
        if path.name in disabled:
            continue
        try:
            template_id = template_id_from_filename(path.name)
            version = (str(path), path.stat().st_mtime_ns)
            text = path.read_text(encoding="utf-8")
            templates[template_id] = parse_template(text, template_id, source, filename=path.name)
        except (TemplateError, OSError, UnicodeDecodeError) as e:
            problems.append(f"{path}: {e}")
            continue
        if templates[template_id].notes and version not in _NOTED:
            if len(_NOTED) >= _NOTED_MOST:
                _NOTED.clear()
            _NOTED.add(version)
            for note in templates[template_id].notes:
                log.warning("template %s: %s", path, note)
    return templates, problems


def file_catalogue(
    system_folder: Path, admin_folder: Path, disabled: Iterable[str] = ()
) -> tuple[dict[str, ServiceTemplate], list[str]]:
    """Shipped templates (minus ``disabledServiceTemplates``), then admin ones,
    which replace shipped ones of the same file name."""
    system, problems = load_folder(system_folder, "system", disabled)
    admin, admin_problems = load_folder(admin_folder, "admin")
    return {**system, **admin}, problems + admin_problems


def combine(
    file_templates: dict[str, ServiceTemplate], user_templates: Iterable[ServiceTemplate]
) -> dict[str, ServiceTemplate]:
    """All templates a user sees, sorted by display name; file templates win
    an id clash (user template ids are chosen not to clash, see
    :func:`karvdash_hub.services.templates.free_id`)."""
    merged = dict(file_templates)
    for template in user_templates:
        merged.setdefault(template.id, template)
    return dict(sorted(merged.items(), key=lambda item: (item[1].name.lower(), item[0])))
