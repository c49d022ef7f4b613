"""Image commands: list_images, get_image, add_image, remove_image.

``add_image`` pushes an image archive that is in your files (upload it
first); the registry refuses nothing silently: an existing name:tag is an
error (exit 6).
"""

from __future__ import annotations

from .client import DashboardClient
from .commands import Command, UsageProblem, argument, quote_name, remove, show_list
from .filecommands import split_remote
from .output import Output


def image_path(name: str) -> str:
    return "/".join(quote_name(part) for part in name.split("/"))


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
    return show_list(client, out, "images", ["name", "tags"], lambda i: (i["name"], " ".join(i["tags"])),
                     items=lambda listing: listing["images"])


def run_get_image(client: DashboardClient, args, out: Output) -> int:
    return show_list(client, out, f"images/{image_path(args.name)}", ["digest", "size", "tags"],
                     lambda g: (g["digest"][:19], g["size"], " ".join(g["tags"])), items=lambda image: image["digests"])


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
    return remove(client, out, f"images/{image_path(name)}:{quote_name(tag)}", {"name": name, "tag": tag},
                  f"removed {name}:{tag}")


COMMANDS = [
    Command("list_images", "list the registry's images", run_list_images),
    Command("get_image", "show an image's tags", run_get_image, (argument("name", help="e.g. team/app"),),
            description="Show an image's tags grouped by digest, with sizes."),
    Command(
        "add_image",
        "push an image archive from your files",
        run_add_image,
        (argument("remote", help="the archive, e.g. private/images/app.tar"),
         argument("image", nargs="?", default="", metavar="NAME[:TAG]", help="e.g. team/app:1.0")),
        description="Push an image archive (docker save, or an OCI layout tar) that is in your files to the "
        "registry. NAME[:TAG] defaults to the archive's own name and tag.",
    ),
    Command("remove_image", "delete a tag (administrators)", run_remove_image,
            (argument("image", metavar="NAME:TAG", help="e.g. team/app:1.0"),),
            description="Delete one tag of an image (administrators)."),
]
