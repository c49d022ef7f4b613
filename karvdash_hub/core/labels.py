"""Labels and annotations that karvdash-hub puts on Kubernetes objects, in one
place: the spawner, the webhook, the dashboard and the chart must agree.
:func:`owner_labels` and :func:`instance_labels` are the label sets of a
user's objects and of a service instance's objects."""

# Namespaces of users carry this label; the webhook acts only on them.
NAMESPACE_LABEL = "karvdash.io/user-namespace"
NAMESPACE_LABEL_VALUE = "enabled"
# The hub user a namespace (or an object in it) belongs to.
OWNER_LABEL = "karvdash.io/owner"
# A pod labelled with this set to "false" gets no datasets mounted.
DATASETS_LABEL = "karvdash.io/datasets"
# Service instances from templates.
INSTANCE_LABEL = "karvdash.io/instance"
TEMPLATE_LABEL = "karvdash.io/template"
VALUES_ANNOTATION = "karvdash.io/values"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "karvdash-hub"

# The Secret (it holds a token) in each user namespace with the dashboard API
# URL and the user's API token, key API_SETTINGS_KEY in INI form. The spawner
# creates it; the webhook mounts it into every pod at API_SETTINGS_MOUNT_PATH,
# where karvdashctl looks for /var/lib/karvdash/config.ini.
API_SETTINGS_SECRET = "karvdash-api"
API_SETTINGS_KEY = "config.ini"
API_SETTINGS_MOUNT_PATH = "/var/lib/karvdash"
# The INI section of that file (and of karvdashctl's own config files).
API_SETTINGS_SECTION = "Karvdash"
# On pods: the volumes the admission webhook added (comma-separated names).
ADDED_VOLUMES_ANNOTATION = "karvdash.io/added-volumes"
# Bookkeeping objects of service instances: "record" (one ConfigMap per
# instance, what the list shows), "singleton" (a template's one instance)
# and "url-prefix" (a claimed serviceURLPrefixes entry, in the hub's namespace).
INSTANCE_PART_LABEL = "karvdash.io/instance-part"


def owner_labels(owner: str) -> dict[str, str]:
    """The labels of every object karvdash-hub makes for the hub user ``owner``."""
    return {OWNER_LABEL: owner, MANAGED_BY_LABEL: MANAGED_BY_VALUE}


def instance_labels(owner: str, name: str, template_id: str, part: str | None = None) -> dict[str, str]:
    """The labels of the objects of ``owner``'s service instance ``name``
    (with ``part``: of one of its bookkeeping objects)."""
    labels = {OWNER_LABEL: owner, INSTANCE_LABEL: name, TEMPLATE_LABEL: template_id, MANAGED_BY_LABEL: MANAGED_BY_VALUE}
    if part:
        labels[INSTANCE_PART_LABEL] = part
    return labels
