from tests.kube.fixtures import *  # noqa: F401,F403
