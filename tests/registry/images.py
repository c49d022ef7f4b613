"""Real minimal image archives for tests, built in memory: one layer tarball,
the image config JSON and ``manifest.json``, laid out as ``docker save``
writes them (no Docker needed)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.startswith("bin/") else 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def docker_save_archive(path: Path, repo_tags: list[str], files: dict[str, bytes] | None = None) -> dict:
    """Write a one-image ``docker save`` archive to ``path``; return what a
    test checks against: the layer's and config's digests and sizes."""
    layer = _tar_bytes(files or {"hello.txt": b"hello from karvdash\n"})
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
            "history": [{"created_by": "tests/registry/images.py"}],
        },
        sort_keys=True,
    ).encode()
    config_digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        [{"Config": f"{config_digest}.json", "RepoTags": repo_tags, "Layers": [f"{layer_digest}/layer.tar"]}]
    ).encode()
    path.write_bytes(
        _tar_bytes(
            {
                f"{config_digest}.json": config,
                f"{layer_digest}/layer.tar": layer,
                f"{layer_digest}/VERSION": b"1.0",
                "manifest.json": manifest,
            }
        )
    )
    return {
        "layer_digest": f"sha256:{layer_digest}",
        "layer_size": len(layer),
        "config_digest": f"sha256:{config_digest}",
        "config_size": len(config),
    }
