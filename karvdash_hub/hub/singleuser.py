"""The single-user server of local mode: ``jupyterhub-singleuser``, less
the one import that costs most of its start.

jsonschema checks the ``iri`` format with rfc3987-syntax when that is
installed (jupyter-events pulls it in through ``jsonschema[format-nongpl]``),
and rfc3987-syntax builds its grammar when imported: about 1.7 of the
3.5 CPU-seconds a JupyterLab start costs here. The server never checks that
format, and jsonschema treats the package as optional (an ImportError skips
the check), so the server runs without it. Measured in docs/benchmarks.md.

Run as ``python -m karvdash_hub.hub.singleuser`` with jupyterhub-singleuser's
arguments.
"""

from __future__ import annotations

import sys

UNNEEDED_MODULES = ("rfc3987_syntax",)


def skip_unneeded_modules() -> None:
    for name in UNNEEDED_MODULES:
        # None in sys.modules makes `import name` raise ImportError
        sys.modules.setdefault(name, None)


def main() -> None:
    skip_unneeded_modules()
    from jupyterhub.singleuser import main as singleuser_main

    sys.exit(singleuser_main())


if __name__ == "__main__":
    main()
