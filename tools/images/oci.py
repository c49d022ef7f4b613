#!/usr/bin/env python3
"""Make a one-layer OCI image archive from a root file system tar.

    oci.py ROOTFS.tar OUT.tar --ref NAME:TAG [--env K=V]... [--cmd JSON]
           [--entrypoint JSON] [--workdir DIR] [--user UID:GID]

The layer is the tar as it is (uncompressed, media type
application/vnd.oci.image.layer.v1.tar), so its digest is its diff ID and
nothing is recompressed. OUT.tar is an OCI image layout in a tar, which
skopeo and buildah read as ``oci-archive:OUT.tar`` (the ``ref.name``
annotation is the tag) and ``ctr images import`` reads too (the
``io.containerd.image.name`` annotation is the full name). Timestamps are
fixed, so the same ROOTFS gives the same image digest.

Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile

EPOCH = "1970-01-01T00:00:00Z"


def _sha256_file(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_archive(rootfs: str, out: str, ref: str, env: list[str], cmd: list[str] | None,
                  entrypoint: list[str] | None, workdir: str | None, user: str | None,
                  labels: dict[str, str] | None = None) -> str:
    """Write OUT and return the manifest digest."""
    layer_digest, layer_size = _sha256_file(rootfs)
    config: dict = {"Env": env}
    if cmd is not None:
        config["Cmd"] = cmd
    if entrypoint is not None:
        config["Entrypoint"] = entrypoint
    if workdir:
        config["WorkingDir"] = workdir
    if user:
        config["User"] = user
    if labels:
        config["Labels"] = labels
    image_config = {
        "created": EPOCH,
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": EPOCH, "created_by": f"tools/images/oci.py {os.path.basename(rootfs)}"}],
    }
    config_digest, config_bytes = _blob(json.dumps(image_config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_bytes = _blob(json.dumps(manifest, sort_keys=True).encode())
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": len(manifest_bytes),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": ref},
        }],
    }
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _add_bytes(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        for digest, data in ((config_digest, config_bytes), (manifest_digest, manifest_bytes)):
            _add_bytes(tar, f"blobs/sha256/{digest.split(':')[1]}", data)
        info = tar.gettarinfo(rootfs, arcname=f"blobs/sha256/{layer_digest.split(':')[1]}")
        info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
        with open(rootfs, "rb") as f:
            tar.addfile(info, f)
    os.replace(tmp, out)
    return manifest_digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rootfs")
    parser.add_argument("out")
    parser.add_argument("--ref", required=True, help="full image name, e.g. localhost/base/python:3.11")
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--cmd", type=json.loads, default=None, help='JSON list, e.g. ["python3"]')
    parser.add_argument("--entrypoint", type=json.loads, default=None)
    parser.add_argument("--workdir")
    parser.add_argument("--user")
    parser.add_argument("--label", action="append", default=[], help="KEY=VALUE")
    args = parser.parse_args(argv)
    labels = dict(item.split("=", 1) for item in args.label)
    digest = write_archive(args.rootfs, args.out, args.ref, args.env, args.cmd, args.entrypoint,
                           args.workdir, args.user, labels)
    print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
