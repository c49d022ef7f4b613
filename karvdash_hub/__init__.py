"""karvdash-hub: data science on Kubernetes, built on JupyterHub."""

__version__ = "0.1.0"
