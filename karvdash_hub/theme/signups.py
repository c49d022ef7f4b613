"""The rows of the Sign-ups page (``authorization-area.html`` calls
:func:`signup_rows`, which the page's handler gives it): one row of forms
per account, made as one piece of text.

In the template, each row's few dozen pieces passed the escaping one by one
(a ``Markup`` made for every one: more than half of a page's rendering);
here what the rows share (the XSRF field, the base URL, the listing's
query) is escaped once per page and an account's name and email once per
row.

The approve, revoke and discard buttons belong to the page's one actions
form (``ACTIONS_FORM``, with the XSRF token) and each names its own address
(``formaction``): the token (over 200 characters) is in the page once for
them and not twice a row. Each email keeps a form of its own, so that
Enter in the field saves that row's address and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from markupsafe import Markup, escape

# the id of the page's form that the rows' action buttons submit
ACTIONS_FORM = "signups-actions"


def _row(info, base: str, query: str, xsrf_field: str, own_name: str | None) -> str:
    name = info.username
    shown = str(escape(name))
    # as Jinja's urlencode filter quotes a path segment
    path = str(escape(quote(name, safe="/")))
    approved = bool(info.is_authorized)
    email = str(escape(info.email or ""))
    actions = []
    if not (approved and name == own_name):
        kind, label = ("btn-outline-secondary", "Revoke") if approved else ("btn-primary", "Approve")
        actions.append(f'<button class="btn btn-sm {kind}" type="submit" form="{ACTIONS_FORM}"'
                       f' formaction="{base}authorize/{path}{query}">{label}</button>')
    actions.append(f'<a class="btn btn-sm btn-outline-secondary" href="{base}change-password/{path}{query}">Set password</a>')
    if not approved:
        actions.append(f'<button class="btn btn-sm btn-outline-danger" type="submit" form="{ACTIONS_FORM}"'
                       f' formaction="{base}discard/{path}{query}"'
                       f''' onclick="return confirm('Discard the sign-up of {shown}?');">Discard</button>''')
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


def actions_form(xsrf: str) -> Markup:
    """The form the rows' action buttons submit: no fields but the XSRF
    token, each button giving its own address."""
    return Markup(f'<form id="{ACTIONS_FORM}" method="post" hidden>'
                  f'<input type="hidden" name="_xsrf" value="{escape(xsrf)}"></form>')
