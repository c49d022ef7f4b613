"""The rows of the Sign-ups page (``authorization-area.html`` calls
:func:`signup_rows`, which the page's handler gives it): one row of forms
per account, made as one piece of text.

In the template, each row's few dozen pieces passed the escaping one by one
(a ``Markup`` made for every one: more than half of a page's rendering);
here what the rows share (the XSRF field, the base URL, the listing's
query) is escaped once per page and an account's name and email once per
row. The markup is the template's as it was, without its indentation.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from markupsafe import Markup, escape


def _row(info, base: str, query: str, xsrf_field: str, own_name: str | None) -> str:
    name = info.username
    shown = str(escape(name))
    # as Jinja's urlencode filter quotes a path segment
    path = str(escape(quote(name, safe="/")))
    approved = bool(info.is_authorized)
    email = str(escape(info.email or ""))
    actions = []
    if not (approved and name == own_name):
        button = ('<button class="btn btn-sm btn-outline-secondary" type="submit">Revoke</button>' if approved
                  else '<button class="btn btn-sm btn-primary" type="submit">Approve</button>')
        actions.append(f'<form class="d-inline" method="post" action="{base}authorize/{path}{query}">'
                       f'{xsrf_field}{button}</form>')
    actions.append(f'<a class="btn btn-sm btn-outline-secondary" href="{base}change-password/{path}{query}">Set password</a>')
    if not approved:
        actions.append(f'<form class="d-inline" method="post" action="{base}discard/{path}{query}"'
                       f''' onsubmit="return confirm('Discard the sign-up of {shown}?');">'''
                       f'{xsrf_field}<button class="btn btn-sm btn-outline-danger" type="submit">Discard</button></form>')
    # (the action buttons keep a space between them, as inline boxes)
    return (
        f'<tr id="{shown}" data-approved="{"yes" if approved else "no"}"><td>{shown}</td>'
        f'<td><form class="d-flex gap-1 karvdash-email-form" method="post" action="{base}authorize/{path}/email{query}">'
        f'{xsrf_field}<input class="form-control form-control-sm" type="email" name="email" value="{email}"'
        f' required maxlength="128" aria-label="Email of {shown}">'
        '<button class="btn btn-sm btn-outline-secondary" type="submit">Save</button></form></td>'
        f'<td>{"Yes" if approved else "Waiting"}</td>'
        f'<td class="small text-body-secondary">#{escape(info.id)}</td>'
        f'<td class="text-end text-nowrap">{chr(10).join(actions)}</td></tr>\n'
    )


def signup_rows(accounts: Iterable, *, base_url: str, action_query: str, xsrf: str, own_name: str | None) -> Markup:
    """The ``<tr>`` of each account (a ``UserInfo`` or a page's row): its
    email form, and its approve or revoke, set-password and discard actions,
    each coming back to the page of ``action_query``. No revoke on the
    administrator's own row (``own_name``)."""
    base, query = str(escape(base_url)), str(escape(action_query))
    xsrf_field = f'<input type="hidden" name="_xsrf" value="{escape(xsrf)}">'
    return Markup("".join(_row(info, base, query, xsrf_field, own_name) for info in accounts))
