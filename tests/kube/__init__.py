"""A real Kubernetes control plane (etcd, apiserver, controllers, kwok) for the tests."""
