"""What the webhook knows of the cluster: each namespace's owner and datasets,
as the last list and the watch events after it told them. Free of I/O; the
list and watch calls are in :mod:`karvdash_hub.webhook.clusterlookup`.

Every admission of a pod needs both, and the API server calls the webhook
while it waits to store the pod: answering from this view instead of asking
the API server again takes a round trip off every pod's creation. It is an
informer's store, the way the API server's own admission plugins (Pod
Security, NamespaceLifecycle) read namespace labels: a change reaches it as
the watch event that reports it, not after a time-to-live, so a removed
dataset or a changed owner label is not mounted after the API server has
sent the event. A kind is only answered from here while its watch is
current (:attr:`KindView.synced`); before the first list, and from a broken
watch until it has caught up again, the webhook asks the API server.

A broken connection keeps the view and its resourceVersion: the next watch
resumes from there, so the changes made meanwhile arrive as its events, none
lost and none twice. That watch has caught up at its first bookmark (the API
server sends it after every change up to its resourceVersion) or, short as
it is, at its end; a resourceVersion the API server no longer has (410 Gone)
or an event that cannot be read means listing again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from karvdash_hub.core.labels import OWNER_LABEL


def owner_of(labels: dict | None) -> str | None:
    """A namespace's owner, from its labels (None without the label)."""
    return (labels or {}).get(OWNER_LABEL) or None


@dataclass
class KindView:
    """One watched kind: its objects' state by namespace."""

    synced: bool = False
    # the resourceVersion the watch resumes from
    resource_version: str = ""

    def interrupted(self) -> None:
        """The connection broke: the changes since :attr:`resource_version`
        are not here until the watch resuming from it catches up."""
        self.synced = False

    def caught_up(self) -> None:
        """The resumed watch has delivered what changed while it was down."""
        self.synced = True

    def lost(self) -> None:
        """The resourceVersion is too old (410) or the events cannot be
        trusted: only a new list makes the view current."""
        self.synced = False
        self.resource_version = ""

    def _advanced(self, event_type: str, metadata: dict) -> None:
        # after the change is applied: a resumed watch starts after it, not before
        self.resource_version = metadata.get("resourceVersion") or self.resource_version
        if event_type == "BOOKMARK":
            # every change up to the bookmark's resourceVersion has arrived
            self.caught_up()


@dataclass
class NamespacesView(KindView):
    # namespace -> owner (None: the namespace exists without an owner label)
    owners: dict[str, str | None] = field(default_factory=dict)

    def replace(self, items: list[dict], resource_version: str) -> None:
        """The answer of a list: every namespace there is."""
        self.owners = {item["metadata"]["name"]: owner_of(item["metadata"].get("labels")) for item in items}
        self.resource_version = resource_version
        self.synced = True

    def apply(self, event_type: str, obj: dict) -> None:
        """A watch event (ADDED, MODIFIED, DELETED, BOOKMARK)."""
        metadata = obj.get("metadata") or {}
        if event_type == "DELETED":
            self.owners.pop(metadata["name"], None)
        elif event_type != "BOOKMARK":
            self.owners[metadata["name"]] = owner_of(metadata.get("labels"))
        self._advanced(event_type, metadata)

    def known(self, namespace: str) -> bool:
        return namespace in self.owners


@dataclass
class DatasetsView(KindView):
    # namespace -> sorted dataset names (no entry: none)
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def replace(self, items: list[dict], resource_version: str) -> None:
        by_namespace: dict[str, set[str]] = {}
        for item in items:
            by_namespace.setdefault(item["metadata"]["namespace"], set()).add(item["metadata"]["name"])
        self.names = {ns: tuple(sorted(names)) for ns, names in by_namespace.items()}
        self.resource_version = resource_version
        self.synced = True

    def apply(self, event_type: str, obj: dict) -> None:
        metadata = obj.get("metadata") or {}
        if event_type != "BOOKMARK":
            namespace, name = metadata["namespace"], metadata["name"]
            current = set(self.names.get(namespace, ()))
            if event_type == "DELETED":
                current.discard(name)
            else:
                current.add(name)
            if current:
                # a new tuple: what was handed out before stays as it was
                self.names[namespace] = tuple(sorted(current))
            else:
                self.names.pop(namespace, None)
        self._advanced(event_type, metadata)

    def of(self, namespace: str) -> tuple[str, ...]:
        return self.names.get(namespace, ())
