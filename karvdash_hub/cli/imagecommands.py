"""Image commands: list_images, get_image, add_image, remove_image.

``add_image`` pushes an image archive that is in your files (upload it
first); the registry refuses nothing silently: an existing name:tag is an
error (exit 6).
"""

from __future__ import annotations

from urllib.parse import quote

from .client import DashboardClient
from .filecommands import UsageProblem, split_remote
from .output import Output


def register(commands) -> None:
    ls = commands.add_parser("list_images", help="list the registry's images", description="List the registry's images.")
    ls.set_defaults(run=run_list_images)

    get = commands.add_parser(
        "get_image", help="show an image's tags", description="Show an image's tags grouped by digest, with sizes."
    )
    get.add_argument("name", help="e.g. team/app")
    get.set_defaults(run=run_get_image)

    add = commands.add_parser(
        "add_image",
        help="push an image archive from your files",
        description="Push an image archive (docker save, or an OCI layout tar) that is in your files to the "
        "registry. NAME[:TAG] defaults to the archive's own name and tag.",
    )
    add.add_argument("remote", help="the archive, e.g. private/images/app.tar")
    add.add_argument("image", nargs="?", default="", metavar="NAME[:TAG]", help="e.g. team/app:1.0")
    add.set_defaults(run=run_add_image)

    remove = commands.add_parser(
        "remove_image", help="delete a tag (administrators)", description="Delete one tag of an image (administrators)."
    )
    remove.add_argument("image", metavar="NAME:TAG", help="e.g. team/app:1.0")
    remove.set_defaults(run=run_remove_image)


def image_path(name: str) -> str:
    return "/".join(quote(part, safe="") for part in name.split("/"))


def split_image(image: str, need_tag: bool) -> tuple[str, str]:
    name, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:
        if need_tag:
            raise UsageProblem(f"{image!r}: give the image as NAME:TAG")
        return image, ""
    if not name or not tag:
        raise UsageProblem(f"{image!r}: give the image as NAME:TAG")
    return name, tag


def run_list_images(client: DashboardClient, args, out: Output) -> int:
    listing = client.request("GET", "images")
    if out.json:
        out.data(listing)
        return 0
    out.table(["name", "tags"], [(i["name"], " ".join(i["tags"])) for i in listing["images"]])
    return 0


def run_get_image(client: DashboardClient, args, out: Output) -> int:
    image = client.request("GET", f"images/{image_path(args.name)}")
    if out.json:
        out.data(image)
        return 0
    out.table(["digest", "size", "tags"],
              [(g["digest"][:19], g["size"], " ".join(g["tags"])) for g in image["digests"]])
    return 0


def run_add_image(client: DashboardClient, args, out: Output) -> int:
    domain, path = split_remote(args.remote)
    if not path:
        raise UsageProblem(f"{args.remote!r}: name the archive, e.g. private/images/app.tar")
    name, tag = split_image(args.image, need_tag=False) if args.image else ("", "")
    pushed = client.request("POST", "images", json={"domain": domain, "path": path, "name": name, "tag": tag})
    out.done(pushed, f"pushed {pushed['image']} ({pushed['digest']})")
    return 0


def run_remove_image(client: DashboardClient, args, out: Output) -> int:
    name, tag = split_image(args.image, need_tag=True)
    client.request("DELETE", f"images/{image_path(name)}:{quote(tag, safe='')}")
    out.done({"name": name, "tag": tag}, f"removed {name}:{tag}")
    return 0
