"""Messages for starts that cannot succeed, from Kubernetes' own reports."""

from __future__ import annotations

import json

import pytest

from karvdash_hub.core.kubeapi import api_error_message
from karvdash_hub.namespaces.spawnfailures import SpawnFailure, api_failure, pod_failure


def waiting(reason, message="", image="example.test/lab:1", init=False):
    key = "initContainerStatuses" if init else "containerStatuses"
    status = {"name": "notebook", "image": image, "state": {"waiting": {"reason": reason}}}
    if message:
        status["state"]["waiting"]["message"] = message
    return {"status": {"phase": "Pending", key: [status]}}


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"])
def test_image_that_cannot_be_pulled(reason):
    assert pod_failure(waiting(reason, "not found")) == (
        f"The image example.test/lab:1 cannot be pulled ({reason}: not found). "
        "Check its name and tag, or choose another image."
    )


def test_init_container_and_config_errors():
    assert "cannot be pulled (ErrImagePull)" in pod_failure(waiting("ErrImagePull", init=True))
    assert pod_failure(waiting("CreateContainerConfigError", 'secret "x" not found')) == (
        'The container notebook cannot be created (CreateContainerConfigError: secret "x" not found).'
    )


def test_still_starting_is_not_a_failure():
    assert pod_failure(None) == ""
    assert pod_failure(waiting("ContainerCreating")) == ""
    assert pod_failure({"status": {"phase": "Running"}}) == ""
    assert pod_failure({"status": {"phase": "Pending"}}, [{"reason": "Scheduled", "message": "assigned"}]) == ""


def test_failed_pod_and_image_events():
    assert pod_failure({"status": {"phase": "Failed", "message": "evicted"}}) == "The server's pod failed: evicted."
    event = {"reason": "Failed", "message": 'Failed to pull image "x:1": not found'}
    assert pod_failure({"status": {"phase": "Pending"}}, [event]) == (
        'The server\'s image cannot be used: Failed to pull image "x:1": not found'
    )


def test_api_refusals_say_what_to_do():
    quota = api_failure("create your server's pod in karvdash-alice", 403, "exceeded quota: compute")
    assert quota.startswith("The resource quota of your namespace does not allow this server (exceeded quota")
    forbidden = api_failure("create your namespace karvdash-alice", 403, 'namespaces is forbidden: User "hub"')
    assert forbidden == (
        'Kubernetes did not allow the hub to create your namespace karvdash-alice (namespaces is forbidden: User "hub"). '
        "An administrator must give the hub the permissions in docs/kubernetes-permissions.md."
    )
    assert api_failure("x", 422, "bad").startswith("Kubernetes refused to x: the request is invalid")
    assert api_failure("x", 500, "boom") == "Kubernetes could not x (HTTP 500: boom)."


def test_api_error_bodies():
    assert api_error_message(json.dumps({"kind": "Status", "message": "m"})) == "m"
    assert api_error_message(b"plain text ") == "plain text"
    assert api_error_message(None, "Forbidden") == "Forbidden"
    assert api_error_message(json.dumps({"kind": "Status"}), "fallback") == "fallback"


def test_failure_message_is_what_jupyterhub_shows():
    assert SpawnFailure("why").jupyterhub_message == "why"


def test_a_server_that_exits_says_how():
    pod = {
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "notebook", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}},
            ],
        }
    }
    assert pod_failure(pod) == "The server stopped as it started: container notebook exited with code 1 (Error)."
