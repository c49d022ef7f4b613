"""Datasets in pods: each Datashim Dataset of a namespace has a PVC of the
same name, mounted at ``/mnt/datasets/<name>``. The spawner and the webhook
both build the volumes here."""

from __future__ import annotations

import hashlib

DATASETS_MOUNT_ROOT = "/mnt/datasets"


def dataset_volume_name(dataset: str) -> str:
    # volume names are DNS labels (<= 63); dataset names may be longer
    name = f"dataset-{dataset}"
    if len(name) <= 63:
        return name
    return f"dataset-{dataset[:40]}-{hashlib.sha256(dataset.encode()).hexdigest()[:12]}"


def dataset_volumes(datasets: list[str]) -> tuple[list[dict], list[dict]]:
    """(volumes, volume mounts) that mount ``datasets`` by their PVCs."""
    volumes, mounts = [], []
    for dataset in sorted(set(datasets)):
        name = dataset_volume_name(dataset)
        volumes.append({"name": name, "persistentVolumeClaim": {"claimName": dataset}})
        mounts.append({"name": name, "mountPath": f"{DATASETS_MOUNT_ROOT}/{dataset}"})
    return volumes, mounts
