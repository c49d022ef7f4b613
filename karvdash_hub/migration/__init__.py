"""``karvdash-hub migrate --from-karvdash``: bring a Karvdash 2.x deployment's
accounts, API tokens, user templates and running services over.

``plan`` is the pure part (what to do, from what was read); ``source``
reads Karvdash (its database and its Kubernetes objects), ``target``
reads and writes the hub's database and the product's Kubernetes objects,
``command`` ties them together. ``passwords`` checks the Django password
hashes the accounts keep until their first login.
"""
