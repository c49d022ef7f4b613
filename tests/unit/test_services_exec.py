"""How an exec ended, from the Status its stream's last message holds."""

from __future__ import annotations

import json

import pytest

from karvdash_hub.services.store import exec_outcome

# as a kubelet (CRI streaming) sends them
NON_ZERO = {
    "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
    "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
    "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
}
# as kwok's local exec sends a command that exited with 3
KWOK_FAILURE = {"status": "Failure", "reason": "InternalError", "code": 500,
                "message": "Internal error occurred: error executing command in container: cmd wait: exit status 3"}


@pytest.mark.parametrize("status, outcome", [
    (b'{"metadata":{},"status":"Success"}', (0, None)),
    (json.dumps(NON_ZERO).encode(), (3, None)),
    (json.dumps(KWOK_FAILURE).encode(), (None, KWOK_FAILURE["message"])),
    (b'{"status":"Failure","reason":"InternalError"}', (None, "InternalError")),
    (b'{"status":"Failure"}', (None, "the command failed")),
    # a code that is not a number is no code
    (b'{"status":"Failure","message":"m","details":{"causes":[{"reason":"ExitCode","message":"x"}]}}', (None, "m")),
    (b'{"status":"Failure","message":"m","details":{"causes":["ExitCode"]}}', (None, "m")),
    (None, (None, "the node did not say how the command ended")),
    (b"not json", (None, "the node's answer on how the command ended is not readable")),
    (b"[1]", (None, "the node's answer on how the command ended is not readable")),
])
def test_the_exit_code_or_why_there_is_none(status, outcome):
    assert exec_outcome(status) == outcome
