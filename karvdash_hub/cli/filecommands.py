"""File commands: ls, upload, download, mkdir, mv, rm.

Remote paths start with their domain, as they are mounted in pods:
``private/data/x.csv`` or ``/shared/models`` (a leading / is allowed).
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

from .client import APIProblem, DashboardClient, quote_path
from .commands import Command, UsageProblem, argument
from .connection import ConnectionProblem
from .output import Output

DOMAINS = ("private", "shared")
UPLOAD_CHUNK = 64 * 1024 * 1024
DOWNLOAD_CHUNK = 1024 * 1024
RETRIES = 5
# rows a listing asks for at a time (the dashboard's largest page)
LS_PAGE = 1000


def split_remote(remote: str) -> tuple[str, str]:
    """``private/a/b`` -> ("private", "a/b")."""
    parts = [p for p in remote.split("/") if p]
    if not parts or parts[0] not in DOMAINS:
        raise UsageProblem(f"{remote!r}: a remote path starts with a domain, e.g. private/data or shared/")
    if "." in parts or ".." in parts:
        # HTTP clients fold these away before the dashboard could refuse them
        raise UsageProblem(f"{remote!r}: remote paths cannot contain . or .. parts")
    return parts[0], "/".join(parts[1:])


def _size(entry: dict) -> str:
    return "-" if entry["type"] == "folder" else str(entry["size"])


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


def list_folder(client: DashboardClient, domain: str, path: str, **query) -> dict:
    """A folder's details with all its entries, read a page at a time
    (following each page's ``next``); a file's details."""
    listing = client.files(domain, path, limit=LS_PAGE, **query)
    if listing["type"] != "folder":
        return listing
    entries = listing.pop("entries", [])
    following = listing.pop("next", None)
    while following:
        page = client.files(domain, path, limit=LS_PAGE, cursor=following, **query)
        entries.extend(page.get("entries", []))
        following = page.get("next")
    for name in ("limit", "sort", "order", "filter"):
        listing.pop(name, None)
    return {**listing, "entries": entries}


def run_ls(client: DashboardClient, args, out: Output) -> int:
    domain, path = split_remote(args.remote)
    query = {"sort": args.sort, "order": "desc" if args.reverse else "asc"}
    if args.filter:
        query["filter"] = args.filter
    listing = list_folder(client, domain, path, **query)
    entries = listing.get("entries", [listing] if listing["type"] != "folder" else [])
    if out.json:
        out.data(listing)
        return 0
    rows = [(e["type"][0] if e["type"] != "file" else "-", _size(e), _time(e["modified"]), e["name"]) for e in entries]
    out.table(["type", "size", "modified", "name"], rows)
    return 0


def run_mkdir(client: DashboardClient, args, out: Output) -> int:
    domain, path = split_remote(args.remote)
    entry = client.request("POST", f"files/{domain}/{quote_path(path)}", json={"type": "folder"})
    out.done(entry, f"created {domain}/{entry['path']}")
    return 0


def run_mv(client: DashboardClient, args, out: Output) -> int:
    domain, path = split_remote(args.source)
    target_domain, target_path = split_remote(args.target)
    entry = client.request(
        "PATCH",
        f"files/{domain}/{quote_path(path)}",
        json={"domain": target_domain, "path": target_path, "overwrite": args.overwrite},
    )
    out.done(entry, f"moved {domain}/{path} to {target_domain}/{entry['path']}")
    return 0


def run_rm(client: DashboardClient, args, out: Output) -> int:
    deleted = []
    for remote in args.remote:
        domain, path = split_remote(remote)
        if not path:
            raise UsageProblem(f"{remote}: the top folder of a domain cannot be deleted")
        if not args.recursive and client.kind(domain, path) == "folder":
            raise UsageProblem(f"{remote} is a folder: use rm -r to delete it with everything in it")
        client.request("DELETE", f"files/{domain}/{quote_path(path)}")
        deleted.append({"domain": domain, "path": path})
        out.say(f"deleted {domain}/{path}")
    out.data({"deleted": deleted})
    return 0


def run_upload(client: DashboardClient, args, out: Output) -> int:
    domain, remote = split_remote(args.remote)
    locals_ = [Path(p) for p in args.local]
    for local in locals_:
        if not local.is_file():
            raise UsageProblem(f"{local}: not a file (folders: zip them first)")
    into_folder = len(locals_) > 1 or args.remote.endswith("/") or not remote
    if not into_folder:
        try:
            into_folder = client.kind(domain, remote) == "folder"
        except APIProblem as problem:
            if problem.status != 404:
                raise
    placed = []
    for local in locals_:
        target = f"{remote}/{local.name}".lstrip("/") if into_folder else remote
        placed.append(upload_file(client, local, domain, target, args.overwrite, out))
    out.data({"uploaded": placed})
    return 0


def upload_file(client: DashboardClient, local: Path, domain: str, path: str, overwrite: bool, out: Output) -> dict:
    size = local.stat().st_size
    upload = client.request("POST", "uploads", json={"domain": domain, "path": path, "size": size, "overwrite": overwrite})
    offset, failures, started = upload["offset"], 0, time.monotonic()
    with open(local, "rb") as f:
        while True:
            f.seek(offset)
            chunk = f.read(UPLOAD_CHUNK)
            try:
                result = client.request(
                    "PUT", f"uploads/{upload['id']}", data=chunk, headers={"Upload-Offset": str(offset)}
                )
            except (APIProblem, ConnectionProblem, OSError) as problem:
                status = getattr(problem, "status", 0)
                if status and status != 409 and status < 500:
                    raise
                if status == 409 and "offset" not in getattr(problem, "body", {}):
                    raise  # the name was taken meanwhile
                failures += 1
                if failures > RETRIES:
                    raise
                time.sleep(min(2**failures, 30))
                offset = client.request("GET", f"uploads/{upload['id']}")["offset"]
                continue
            failures = 0
            offset = result["offset"]
            out.progress(local.name, offset, size, started)
            if result.get("complete"):
                break
    out.progress_done()
    entry = result["entry"]
    out.say(f"uploaded {local} to {domain}/{entry['path']} ({size} bytes)")
    return entry


def run_download(client: DashboardClient, args, out: Output) -> int:
    domain, path = split_remote(args.remote)
    response = client.stream(f"download/{domain}/{quote_path(path)}")
    name = (path.rsplit("/", 1)[-1] or domain) + (".zip" if response.headers.get("Content-Type") == "application/zip" else "")
    local = Path(args.local or name)
    if local.is_dir():
        local = local / name
    if local.exists() and not args.overwrite:
        response.close()
        raise UsageProblem(f"{local} exists (use --overwrite to replace it)")
    total = int(response.headers.get("Content-Length") or 0)
    received, started = 0, time.monotonic()
    # into a temporary file beside the target: a broken download leaves nothing behind
    fd, staged = tempfile.mkstemp(prefix=f".{local.name}.", dir=local.parent if str(local.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in response.iter_content(DOWNLOAD_CHUNK):
                f.write(piece)
                received += len(piece)
                out.progress(local.name, received, total, started)
        if total and received != total:
            raise OSError(f"the download stopped after {received} of {total} bytes")
        os.replace(staged, local)
    except BaseException:
        os.unlink(staged)
        raise
    finally:
        response.close()
    out.progress_done()
    out.done({"path": str(local), "size": received}, f"downloaded {domain}/{path} to {local} ({received} bytes)")
    return 0


OVERWRITE = "--overwrite"

COMMANDS = [
    Command("ls", "list a folder", run_ls,
            (argument("remote", nargs="?", default="private/", help="e.g. private/data (default: private/)"),
             argument("--sort", choices=("name", "modified", "size"), default="name",
                      help="order folders, then files, by this (default: name)"),
             argument("-r", "--reverse", action="store_true", help="in descending order"),
             argument("--filter", help="only names holding this text, in any case")),
            description="List a remote folder (or show a file), a page at a time however large it is."),
    Command(
        "upload",
        "upload files",
        run_upload,
        (argument("local", nargs="+", help="local files"),
         argument("remote", help="remote folder (or file name), e.g. private/data/"),
         argument(OVERWRITE, action="store_true", help="replace files that exist")),
        description="Upload local files, resumably in chunks. With one file, REMOTE may name the new file; "
        "otherwise it is the folder they go to.",
    ),
    Command(
        "download",
        "download a file or a folder (as zip)",
        run_download,
        (argument("remote", help="e.g. private/data/x.csv"),
         argument("local", nargs="?", help="where to write it (default: its name, here)"),
         argument(OVERWRITE, action="store_true", help="replace a local file that exists")),
        description="Download a remote file, or a folder as <name>.zip.",
    ),
    Command("mkdir", "create a folder", run_mkdir, (argument("remote", help="e.g. private/new-folder"),),
            description="Create a remote folder."),
    Command(
        "mv",
        "rename or move",
        run_mv,
        (argument("source", help="e.g. private/old"),
         argument("target", help="e.g. shared/new"),
         argument(OVERWRITE, action="store_true", help="replace the target if it exists")),
        description="Rename or move a remote file or folder (also across domains).",
    ),
    Command(
        "rm",
        "delete",
        run_rm,
        (argument("remote", nargs="+", help="e.g. private/old.csv"),
         argument("-r", "--recursive", action="store_true", help="delete folders with everything in them")),
        description="Delete a remote file (folders need -r).",
    ),
]
