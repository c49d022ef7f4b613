"""Why a server did not start, in words for the person who started it.

Kubernetes reports a missing image, an exceeded quota or a refused request
in pod statuses, events and API errors; without these messages the person
would only see a timeout. Pure functions of those reports, used by the
namespace set-up (``store.py``) and by ``karvdash_hub.hub.spawner``.
"""

from __future__ import annotations

from jupyterhub.spawner import SpawnException

# Container waiting reasons that mean the image will not come.
IMAGE_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
)
# Waiting reasons that mean the container cannot be made as specified.
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})


class SpawnFailure(SpawnException):
    """A start failed for a reason the person can act on. JupyterHub's own
    kind for it: the spawn page and the progress events show the message,
    the REST API answers 400 with it (not a 500), and no traceback is logged."""

    def __init__(self, message: str):
        super().__init__(message, reason="karvdash")

    @property
    def jupyterhub_message(self) -> str:
        return self.message


def api_failure(action: str, status: int, message: str) -> str:
    """A refused API request (``action`` says what the hub tried)."""
    if status == 403 and "exceeded quota" in message:
        return (
            f"The resource quota of your namespace does not allow this server ({message}). "
            "Choose a smaller size, stop another server or ask an administrator for more."
        )
    if status == 403:
        return (
            f"Kubernetes did not allow the hub to {action} ({message}). "
            "An administrator must give the hub the permissions in docs/kubernetes-permissions.md."
        )
    if status == 422:
        return f"Kubernetes refused to {action}: the request is invalid ({message})."
    return f"Kubernetes could not {action} (HTTP {status}: {message})."


def pod_failure(pod: dict | None, events: list[dict] = ()) -> str:
    """Why ``pod`` will not become ready, from its status and events
    ('' while it may still start)."""
    if pod:
        status = pod.get("status") or {}
        for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason") or ""
            detail = f": {waiting['message']}" if waiting.get("message") else ""
            if reason in IMAGE_PULL_REASONS:
                return (
                    f"The image {container.get('image') or '?'} cannot be pulled ({reason}{detail}). "
                    "Check its name and tag, or choose another image."
                )
            if reason in CONFIG_REASONS:
                return f"The container {container.get('name')} cannot be created ({reason}{detail})."
        if status.get("phase") == "Failed":
            for container in status.get("containerStatuses") or []:
                ended = (container.get("state") or {}).get("terminated")
                if ended:
                    why = ended.get("message") or ended.get("reason") or "no reason given"
                    return (
                        f"The server stopped as it started: container {container.get('name')} "
                        f"exited with code {ended.get('exitCode')} ({why})."
                    )
            why = status.get("message") or status.get("reason") or "no reason given"
            return f"The server's pod failed: {why}."
    for event in events:
        message = event.get("message") or ""
        if event.get("reason") in ("Failed", "InspectFailed") and "image" in message.lower():
            return f"The server's image cannot be used: {message}"
    return ""
