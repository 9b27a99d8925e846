"""Server-rendered HTML: the notebook list (a fragment the page re-fetches every 2 s), the
Create form with a message next to each field, and the little JavaScript the actions need.
Every value is escaped; no token or secret is written into a page except the CSRF token."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final
from urllib.parse import quote

from notebook_controller.console.forms import CreateForm
from notebook_controller.console.views import NotebookView


@dataclass(frozen=True)
class Rights:
    """What the user may do to notebooks in one namespace (access reviews)."""

    patch: bool
    delete: bool
    create: bool


@dataclass(frozen=True)
class NamespaceRows:
    namespace: str
    notebooks: Sequence[NotebookView]
    rights: Rights


STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: .35em .5em; text-align: left;
  vertical-align: top; font-size: 14px; }
th { background: #f4f4f4; }
.yes { color: #0a7a28; font-weight: 600; } .no { color: #a33; font-weight: 600; }
.why, .idle { max-width: 28em; } code { font-size: 12px; }
button { margin: 1px; } button[disabled] { opacity: .45; }
#message { min-height: 1.4em; padding: .3em; } #message.error { color: #a33; }
.field { margin: .4em 0; } .field label { display: inline-block; width: 11em; }
.error { color: #a33; } .hint { color: #666; font-size: 12px; }
dialog { padding: 1em 1.5em; } h2 a.create { font-size: 14px; font-weight: normal; }
"""

SCRIPT: Final = """
const csrf = document.querySelector('meta[name=csrf-token]').content;
const message = document.getElementById('message');
let said = 0;
function say(text, error) {
  message.textContent = text; message.className = error ? 'error' : '';
  const now = ++said;
  if (!error) setTimeout(() => { if (now === said) message.textContent = ''; }, 15000);
}
async function refresh() {
  try {
    const r = await fetch('rows', {cache: 'no-store'});
    if (r.ok) document.getElementById('rows').innerHTML = await r.text();
  } catch (e) { say('lost contact with the console: ' + e, true); }
}
async function act(ns, name, action) {
  const r = await fetch(`notebooks/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/${action}`,
    {method: 'POST', headers: {'X-CSRF-Token': csrf}});
  say(await r.text(), !r.ok);
  refresh();
}
const dialog = document.getElementById('confirm');
document.addEventListener('click', (e) => {
  const b = e.target.closest('button[data-action]');
  if (!b || b.disabled) return;
  const {namespace, name, action} = b.dataset;
  if (action === 'delete') {
    document.getElementById('confirm-what').textContent = `${namespace}/${name}`;
    dialog.dataset.namespace = namespace; dialog.dataset.name = name;
    dialog.showModal();
  } else { act(namespace, name, action); }
});
document.getElementById('confirm-yes').addEventListener('click', () => {
  dialog.close(); act(dialog.dataset.namespace, dialog.dataset.name, 'delete');
});
document.getElementById('confirm-no').addEventListener('click', () => dialog.close());
setInterval(refresh, 2000);
"""


def _page(title: str, user: str, csrf: str, body: str, script: str = "") -> str:
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title>"
        f'<meta name="csrf-token" content="{escape(csrf)}">'
        f"<style>{STYLE}</style></head><body>"
        f'<p class=hint>Signed in as <b id="user">{escape(user)}</b> · '
        '<a href="./">Notebooks</a> · <a href="create">Create</a></p>'
        f"{body}" + (f"<script>{script}</script>" if script else "") + "</body></html>"
    )


def _yes_no(value: bool, yes: str = "yes", no: str = "no") -> str:
    return f'<span class="{"yes" if value else "no"}">{yes if value else no}</span>'


def _button(nb: NotebookView, action: str, label: str, enabled: bool, why_not: str) -> str:
    disabled = "" if enabled else f' disabled title="{escape(why_not)}"'
    return (
        f'<button data-action="{action}" data-namespace="{escape(nb.namespace)}"'
        f' data-name="{escape(nb.name)}"{disabled}>{label}</button>'
    )


def _row(nb: NotebookView, rights: Rights) -> str:
    no_patch = f"you may not patch notebooks in {nb.namespace}"
    requests = " · ".join(
        part
        for part in (
            f"CPU {nb.cpu}" if nb.cpu else "",
            f"memory {nb.memory}" if nb.memory else "",
            f"GPU {nb.gpu_percent}%" if nb.gpu_percent else "",
            f"queue {nb.queue}" if nb.queue else "",
        )
        if part
    )
    open_link = (
        f'<a class="open" href="{escape(nb.url)}" target="_blank" rel="noopener">Open</a>'
        if nb.ready and nb.url
        else ""
    )
    actions = " ".join(
        (
            open_link,
            _button(
                nb,
                "pause",
                "Pause",
                rights.patch and not nb.paused,
                no_patch if not rights.patch else "already paused",
            ),
            _button(
                nb,
                "resume",
                "Resume",
                rights.patch and nb.paused,
                no_patch if not rights.patch else "already running",
            ),
            _button(
                nb,
                "delete",
                "Delete",
                rights.delete,
                f"you may not delete notebooks in {nb.namespace}",
            ),
        )
    )
    return (
        f'<tr data-notebook="{escape(nb.key)}">'
        f'<td class="name">{escape(nb.name)}</td>'
        f'<td class="type">{escape(nb.type)}</td>'
        f'<td class="phase">{escape(nb.phase)}</td>'
        f'<td class="ready">{_yes_no(nb.ready)}</td>'
        f'<td class="why">{escape(nb.why)}</td>'
        f'<td class="idle">{escape(nb.idle)}</td>'
        f'<td class="requests">{escape(requests) or "—"}</td>'
        f'<td class="ssh">{f"<code>{escape(nb.ssh)}</code>" if nb.ssh else "—"}</td>'
        f'<td class="actions">{actions}</td></tr>'
    )


def rows(sections: Sequence[NamespaceRows], problems: Sequence[str]) -> str:
    parts = [f'<p class="error problem">{escape(p)}</p>' for p in problems]
    if not sections:
        parts.append("<p class=empty>No notebooks you may see.</p>")
    for section in sections:
        head = (
            "<tr><th>Name</th><th>Type</th><th>Phase</th><th>Ready</th><th>Why</th>"
            "<th>Idle</th><th>Requests</th><th>SSH</th><th>Actions</th></tr>"
        )
        body = "".join(_row(nb, section.rights) for nb in section.notebooks)
        if not section.notebooks:
            body = "<tr><td colspan=9 class=hint>no notebooks</td></tr>"
        create = (
            f' <a class="create" href="create?namespace={quote(section.namespace)}">Create here</a>'
            if section.rights.create
            else ""
        )
        parts.append(
            f'<section data-namespace="{escape(section.namespace)}">'
            f"<h2>{escape(section.namespace)}{create}</h2><table>{head}{body}</table></section>"
        )
    return "".join(parts)


def list_page(user: str, csrf: str, fragment: str) -> str:
    body = (
        "<h1>Notebooks</h1><div id=message role=status></div>"
        f"<div id=rows>{fragment}</div>"
        "<dialog id=confirm><p>Delete notebook <b id=confirm-what></b>? Its pod and Services"
        " go; volumes (PVCs) stay.</p><button id=confirm-yes>Delete</button>"
        " <button id=confirm-no>Cancel</button></dialog>"
    )
    return _page("Notebooks", user, csrf, body, SCRIPT)


_LABELS: Final[Mapping[str, tuple[str, str]]] = {
    "namespace": ("Namespace", "where the notebook lives"),
    "name": ("Name", "a DNS label: lower case, digits, '-'"),
    "image": ("Image", "e.g. the standard notebook image"),
    "cpu": ("CPU request", "e.g. 0.5 or 500m (optional)"),
    "memory": ("Memory request", "e.g. 1Gi (optional)"),
    "gpu_percent": ("GPU percent", "share of a GPU, 1-100 (optional)"),
    "queue": ("Scheduler queue", "T9k Scheduler queue, e.g. default (optional)"),
    "ssh_key_secret": ("SSH key Secret", "Secret with your public key (key ssh-publickey)"),
}


def create_page(
    user: str, csrf: str, form: CreateForm, namespaces: Sequence[str], images: Sequence[str]
) -> str:
    v = form.values

    def error(name: str) -> str:
        found = form.errors.get(name)
        return (
            f' <span class="error" data-error-for="{name}">{escape(found)}</span>' if found else ""
        )

    def text(name: str, datalist: str = "") -> str:
        label, hint = _LABELS[name]
        listed = f' list="{datalist}"' if datalist else ""
        return (
            f'<div class="field"><label for="{name}">{label}</label>'
            f'<input id="{name}" name="{name}" value="{escape(v.get(name, ""))}" size=50{listed}>'
            f" <span class=hint>{escape(hint)}</span>{error(name)}</div>"
        )

    options = "".join(
        f'<option value="{t}"{" selected" if v.get("type") == t else ""}>{t}</option>'
        for t in ("jupyter", "rstudio")
    )
    body = (
        "<h1>Create a notebook</h1>"
        + (
            f'<p class="error" data-error-for="">{escape(form.errors[""])}</p>'
            if "" in form.errors
            else ""
        )
        + '<form method="post" action="create" id="create">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        + text("namespace", "namespaces")
        + text("name")
        + f'<div class="field"><label for="type">Type</label><select id="type" name="type">'
        f"{options}</select>{error('type')}</div>"
        + text("image", "images")
        + text("cpu")
        + text("memory")
        + text("gpu_percent")
        + text("queue")
        + '<div class="field"><label for="ssh">SSH</label>'
        f'<input type="checkbox" id="ssh" name="ssh"{" checked" if v.get("ssh") else ""}>'
        " <span class=hint>log in with ssh (NodePort)</span></div>"
        + text("ssh_key_secret")
        + '<button type="submit" id="submit">Create</button></form>'
        + '<datalist id="namespaces">'
        + "".join(f'<option value="{escape(n)}">' for n in namespaces)
        + '</datalist><datalist id="images">'
        + "".join(f'<option value="{escape(i)}">' for i in images)
        + "</datalist>"
    )
    return _page("Create a notebook", user, csrf, body)
