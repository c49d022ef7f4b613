"""The webhook's two decisions, from an AdmissionRequest to an AdmissionReview.

The rules themselves are pure functions in :mod:`karvdash_hub.admission.rules` and
:mod:`karvdash_hub.admission.hostpaths`; this class adds the cluster lookups they need.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Protocol

from karvdash_hub.admission.hostpaths import HostPathPolicy
from karvdash_hub.admission.rules import (
    AdmissionRequest,
    PodAdditions,
    mount_patch,
    review_response,
    volume_refusals,
    wants_datasets,
)
from karvdash_hub.core.labels import OWNER_LABEL
from karvdash_hub.core.settings import KarvdashConfig
from karvdash_hub.files.domains import FileDomains
from karvdash_hub.namespaces.objects import REGISTRY_PULL_SECRET, registry_credentials

from .clusterlookup import ClusterUnavailable

log = logging.getLogger("karvdash_hub.webhook")

# (owner, datasets) pairs whose additions are kept: a few per namespace in use
ADDITIONS_KEPT = 4096


class Lookup(Protocol):
    async def owner(self, namespace: str) -> str | None: ...

    async def datasets(self, namespace: str) -> tuple[str, ...] | list[str]: ...


class Reviewer:
    def __init__(self, settings: KarvdashConfig, lookup: Lookup):
        self.domains = FileDomains.from_settings(settings)
        self.policy = HostPathPolicy(self.domains, tuple(settings.allowedHostPathDirs))
        self.datasets_available = settings.datasetsAvailable
        # the Secret the hub writes into every user namespace when the registry has credentials
        self.pull_secrets = (REGISTRY_PULL_SECRET,) if registry_credentials(settings.dockerRegistryURL) else ()
        self.lookup = lookup
        # keyed by everything they are built from, so an entry cannot outlive
        # a change of the namespace's owner or datasets: a new state is a new key
        self.additions = lru_cache(maxsize=ADDITIONS_KEPT)(self._build_additions)

    def _build_additions(self, owner: str | None, datasets: tuple[str, ...]) -> PodAdditions:
        # only pods of a user's namespace: elsewhere the Secret is not the hub's
        return PodAdditions.build(self.domains, owner, datasets, self.pull_secrets if owner else ())

    async def mutate(self, request: AdmissionRequest) -> dict:
        """Add file domains, API settings and datasets to a new pod."""
        if (request.group, request.kind) != ("", "Pod") or request.operation != "CREATE":
            return review_response(request.uid)
        try:
            owner = await self.lookup.owner(request.namespace)
            datasets = ()
            if self.datasets_available and wants_datasets(request.object):
                datasets = await self.lookup.datasets(request.namespace)
        except ClusterUnavailable as e:
            log.error("mutate %s in %s: %s", request.display_name, request.namespace, e)
            return review_response(request.uid, allowed=False, code=503,
                                   message=f"karvdash webhook: {e}; try again")
        warnings = []
        if not owner:
            warnings.append(f"namespace {request.namespace} has no {OWNER_LABEL} label: "
                            "no file domains were added")
        patch = mount_patch(request.object, self.additions(owner, tuple(datasets)))
        return review_response(request.uid, patch=patch, warnings=warnings)

    async def validate(self, request: AdmissionRequest) -> dict:
        """Refuse host paths (and NFS paths into the files) the owner may not mount."""
        # Without an owner the policy is strictest; most pods pass it, and
        # then the API need not be asked at all.
        refusals = volume_refusals(request, self.policy, None)
        if refusals:
            try:
                owner = await self.lookup.owner(request.namespace)
            except ClusterUnavailable as e:
                log.error("validate %s in %s: %s", request.display_name, request.namespace, e)
                return review_response(request.uid, allowed=False, code=503,
                                       message=f"karvdash webhook: {e}; try again")
            if owner:
                refusals = volume_refusals(request, self.policy, owner)
        if refusals:
            log.info("refused %s in %s: %s", request.display_name, request.namespace, "; ".join(refusals))
            return review_response(request.uid, allowed=False, code=403,
                                   message="karvdash: " + "; ".join(refusals))
        return review_response(request.uid)
