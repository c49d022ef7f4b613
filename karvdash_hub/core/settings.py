"""The deployment settings shared by the hub, the dashboard service and the webhook.

Every setting is a trait of :class:`KarvdashConfig`. Trait names are the keys of
the Helm chart's ``karvdash:`` values section, so one name serves the chart,
the values file, ``jupyterhub_config.py`` (``c.KarvdashConfig.filesURL``) and,
upper-cased with underscores, the environment (``KARVDASH_FILES_URL``).

Settings are read, in increasing order of precedence, from the trait defaults,
one YAML values file (``$KARVDASH_VALUES``), the environment, and traitlets
config. :func:`load_settings` validates them all (and reads the files they
name, :func:`check_files`) and raises :class:`SettingsError` naming the
first bad setting, so a wrong deployment stops at start-up instead of
failing on the first request.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml
from traitlets import (
    Bool,
    CaselessStrEnum,
    Dict,
    Enum,
    Integer,
    List,
    TraitError,
    Unicode,
    default,
    validate,
)
from traitlets.config import Config, Configurable

from .karvdashvalues import map_karvdash_values
from .names import DNS_LABEL, DNS_SUBDOMAIN
from .paths import PROJECT_ROOT
from .scopes import KARVDASH2_API_PATH, SERVICE_PREFIX
from .settingtext import SettingsError, check_absolute_path, parse_setting_text

VALUES_ENV = "KARVDASH_VALUES"
ENV_PREFIX = "KARVDASH_"

QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
USERNAME_PATTERN = r"^[a-z0-9]{1,32}\Z"  # \Z: "$" would let a trailing newline through


def _check_http_url(name: str, value: str, *, allow_path: bool = True) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TraitError(f"{value!r} is not an http:// or https:// URL with a host")
    if not allow_path and parts.path not in ("", "/"):
        raise TraitError(f"{value!r} must not have a path")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as e:
        raise TraitError(f"{value!r} has a bad port: {e}") from None
    return value


class KarvdashConfig(Configurable):
    """Deployment settings of karvdash-hub (the chart's ``karvdash:`` values)."""

    # what :func:`load_settings` read under Karvdash's names (karvdashvalues), for the programs to log
    value_warnings: tuple[str, ...] = ()

    # --- where things run and live -------------------------------------------------

    mode = Enum(
        ["local", "kubernetes"],
        "local",
        config=True,
        help="""Where user servers run. ``local`` runs them as local processes of
        the hub's OS user (for trying karvdash-hub without a cluster);
        ``kubernetes`` runs them as pods in per-user namespaces.""",
    )

    stateDir = Unicode(
        config=True,
        help="""Absolute path of the folder with the hub's state: the SQLite
        database, the cookie secret, the generated admin password, admin
        profile files (``profiles/``) and admin service templates
        (``templates/``). Created if missing.""",
    )

    hubDatabaseWAL = Bool(
        True,
        config=True,
        help="""Keep the hub's SQLite database (the default, in ``stateDir``) in
        write-ahead-log mode: a commit appends to one file and syncs it once,
        where the rollback journal syncs two files and deletes one (a third
        of the time per commit here), equally durable. Turn it off when the
        state folder is on a network file system that more than one host
        opens: SQLite's log needs every process on one host. No effect on
        another database (``JupyterHub.db_url``). With it on, copy the
        database with ``sqlite3 jupyterhub.sqlite .backup`` while the hub
        runs (the file alone may lack the last commits).""",
    )

    @default("stateDir")
    def _default_state_dir(self):
        return str(PROJECT_ROOT / ".state")

    filesURL = Unicode(
        "",
        config=True,
        help="""Base URL of the file domains: ``file://<path>`` for a folder
        mounted at the same path on every node (and in the hub),
        ``nfs://<server>/<path>`` for an NFS export, or
        ``minio://<host>:<port>/<bucket>[/<prefix>]`` (``minios://`` over TLS)
        for an S3 bucket, with the ``filesS3*`` credentials (only the
        dashboard uses them: pods mount no S3 files). karvdash-hub keeps ``private/<user>``, ``shared``
        and ``uploads`` inside it. Empty means ``file://<stateDir>/files``.""",
    )

    filesS3AccessKey = Unicode(
        "",
        config=True,
        help="""Access key ID for an S3 ``filesURL`` (``minio://``/``minios://``);
        required with one.""",
    )

    filesS3SecretKey = Unicode(
        "",
        config=True,
        help="""Secret key for an S3 ``filesURL``; better given as
        ``KARVDASH_FILES_S3_SECRET_KEY`` or in ``filesS3SecretKeyFile`` than
        in a values file.""",
    )

    filesS3SecretKeyFile = Unicode(
        "",
        config=True,
        help="""Absolute path of a file holding the secret key of an S3
        ``filesURL`` (e.g. a mounted Secret); read at start-up, wins over
        ``filesS3SecretKey``.""",
    )

    filesS3Region = Unicode(
        "us-east-1",
        config=True,
        help="Region of the bucket of an S3 ``filesURL``.",
    )

    filesMountPath = Unicode(
        "",
        config=True,
        help="""Where the hub and the dashboard see the root of ``filesURL``.
        Empty means the path of a ``file://`` URL; an ``nfs://`` URL needs it
        (the chart mounts the export there).""",
    )

    filesSize = Unicode(
        "1Pi",
        config=True,
        help="Size requested for the files persistent volume (a Kubernetes quantity).",
    )

    ingressURL = Unicode(
        "",
        config=True,
        help="""The URL the cluster's ingress answers on, e.g.
        ``https://example.com``; services get host names under it. Required in
        ``kubernetes`` mode.""",
    )

    # --- images, datasets, host paths --------------------------------------------

    dockerRegistryURL = Unicode(
        "",
        config=True,
        help="""URL of a private Docker Registry (v2), optionally with
        credentials (``https://user:password@registry.example.com``). Enables
        the Images page and a pull secret in user namespaces.""",
    )

    dockerRegistryCert = Unicode(
        "",
        config=True,
        help="""The registry's CA certificate, PEM text or the absolute path of a
        PEM file (for a self-signed registry).""",
    )

    dockerRegistryInsecure = Bool(
        False,
        config=True,
        help="""Do not verify the TLS certificate of the ``dockerRegistryURL``
        registry (for that registry only: listing, deleting and pushing
        images). Prefer ``dockerRegistryCert``; nodes pull from such a
        registry only if their container runtime is told it is insecure.""",
    )

    datasetsAvailable = Bool(
        False,
        config=True,
        help="Enable dataset management (needs Datashim in the cluster).",
    )

    datasetsAPIGroup = Enum(
        ["datashim.io", "com.ie.ibm.hpsys"],
        "datashim.io",
        config=True,
        help="""API group of Datashim's ``Dataset`` resource: ``datashim.io``
        (Datashim >= 0.4) or ``com.ie.ibm.hpsys`` (older releases).""",
    )

    allowedHostPathDirs = List(
        Unicode(),
        config=True,
        help="""Other host folders that pods in user namespaces may mount
        (besides the user's private folder and the shared folder). In the
        environment, separate them with ``:``.""",
    )

    disabledServiceTemplates = List(
        Unicode(),
        config=True,
        help="File names of shipped service templates to hide.",
    )

    disabledDatasetTemplates = List(
        Unicode(),
        config=True,
        help="Dataset types to hide (``s3-local``, ``s3-remote``, ``h3-local``, ``h3-remote``, ``archive``).",
    )

    serviceURLPrefixes = List(
        Unicode(),
        config=True,
        help="""Predefined host name prefixes for services. When set, each new
        service takes a free prefix instead of ``<name>-<user>``.""",
    )

    # --- spawn profiles -------------------------------------------------------------

    disabledProfiles = List(
        Unicode(),
        config=True,
        help="Slugs of spawn profiles to hide (shipped or admin ones).",
    )

    gpuResourceName = Unicode(
        "nvidia.com/gpu",
        config=True,
        help="Extended resource that GPU profiles request.",
    )

    gpuNodeSelector = Dict(
        config=True,
        help="Node selector added to pods of GPU profiles, e.g. ``{nvidia.com/gpu.present: 'true'}``.",
    )

    gpuTolerations = List(
        Dict(),
        config=True,
        help="Tolerations added to pods of GPU profiles (Kubernetes toleration objects).",
    )

    # --- spawn admission ---------------------------------------------------------------

    spawnConcurrency = Integer(
        0,
        config=True,
        help="""How many user servers start at once. The others wait in a queue,
        first come first served, and see their place on the spawn page; a
        place is taken from just before ``Spawner.start`` until the server
        answers (or its start failed or was stopped). 0 sizes it from the
        machine: in local mode 4 for each CPU the hub may use (a JupyterLab
        start is about 2 CPU-seconds and half waiting: 4 a CPU keep the CPUs
        busy, and each start within seconds), in kubernetes mode 20. JupyterHub's
        ``concurrent_spawn_limit`` still bounds how many may be starting or
        queued (beyond it the hub answers 429), see docs/deployment.md.""",
    )

    spawnQueueTimeout = Integer(
        900,
        config=True,
        help="""Seconds a start may wait in the spawn queue; after that it fails
        with "the hub is busy" (429) and the user may try again. The wait is
        not counted in ``Spawner.start_timeout`` or ``Spawner.http_timeout``,
        which bound only the server's own start.""",
    )

    # --- user namespaces (kubernetes mode) ---------------------------------------------

    namespaceTemplate = Unicode(
        "karvdash-{username}",
        config=True,
        help="""Name of each user's namespace; ``{username}`` is replaced by the
        user's name. The spawner, the dashboard and the webhook all use it.""",
    )

    namespaceRole = Enum(
        ["edit", "admin"],
        "edit",
        config=True,
        help="""Built-in ClusterRole that the ``default`` service account of a
        user namespace gets in that namespace (by a RoleBinding): ``edit``
        (workloads, services, secrets) or ``admin`` (also Roles and
        RoleBindings inside the namespace). Never cluster-wide.""",
    )

    allowedServiceTypes = List(
        Enum(["NodePort", "LoadBalancer", "ExternalName"]),
        config=True,
        help="""Service types, besides ``ClusterIP``, that Services in user
        namespaces may have (the chart's ValidatingAdmissionPolicy refuses the
        others, whoever creates the Service). ``NodePort`` and ``LoadBalancer``
        open ports on every node; an ``ExternalName`` that names a Service of
        another namespace (``<name>.<namespace>.svc...``) is refused even
        when the type is allowed.""",
    )

    allowServiceExternalIPs = Bool(
        False,
        config=True,
        help="""Let Services in user namespaces set ``externalIPs``, which makes
        every node answer for those addresses (a way to take over another
        service's IP).""",
    )

    allowedPriorityClasses = List(
        Unicode(),
        config=True,
        help="""PriorityClasses that pods in user namespaces may name in
        ``priorityClassName`` (no class is always allowed). Add the cluster's
        ``globalDefault`` class, if it has one: Kubernetes writes its name into
        every pod without a class.""",
    )

    ingressControllerNamespace = Unicode(
        "ingress-nginx",
        config=True,
        help="""Namespace of the ingress controller, which the NetworkPolicy of
        each user namespace lets in (with the hub's namespace and the
        namespace itself). Empty lets no ingress controller in.""",
    )

    deletePrivateFilesWithUser = Bool(
        False,
        config=True,
        help="""When a user is deleted, also delete their private folder
        (``private/<user>``). Off by default: files outlive accounts unless
        the administrator says otherwise.""",
    )

    karvdashctlURL = Unicode(
        "",
        config=True,
        help="""URL of the dashboard's API as pods reach it, written with a
        token into each user namespace (the Secret ``karvdash-api``) for
        ``karvdashctl``. Empty means ``<ingressURL>/services/karvdash/karvdash2/api/``:
        the Karvdash 2.x API, so that Karvdash's own client in older images
        works unchanged; this project's ``karvdashctl`` takes the dashboard's
        address from either API's URL.""",
    )

    appProxyImage = Unicode(
        "karvdash-hub:latest",
        config=True,
        help="""Image of the sidecar that puts the hub's login in front of
        non-Jupyter apps (profiles with ``app:``); it runs
        ``jupyter-standaloneproxy``, which the karvdash-hub image contains.""",
    )

    # --- services from templates ---------------------------------------------------

    ingressClassName = Unicode(
        "nginx",
        config=True,
        help="""IngressClass of the ingresses of services (set on those whose
        template names none). Protection by the hub's login needs
        ingress-nginx.""",
    )

    serviceAuthURL = Unicode(
        "",
        config=True,
        help="""Base URL that ingress-nginx calls to check each request to a
        protected service (the dashboard's ``ingress-auth/check`` endpoint as
        the ingress controller reaches it, e.g.
        ``http://karvdash-dashboard.karvdash.svc:8080/services/karvdash/ingress-auth/check``).
        Empty means ``<ingressURL>/services/karvdash/ingress-auth/check``.""",
    )

    serviceAuthAdmins = Bool(
        False,
        config=True,
        help="""Let administrators open every user's protected services (by
        default only the owner may).""",
    )

    serviceAuthOptional = Bool(
        False,
        config=True,
        help="""Let users' own templates say ``auth: false``: their services'
        addresses are then open without the hub's login. Shipped and admin
        templates may always say it; by default users' templates may not.""",
    )

    templateMaxObjects = Integer(
        50,
        config=True,
        help="""Most Kubernetes objects one service template may create,
        checked when a user adds a template and whenever a service is
        started from one.""",
    )

    kubeconfig = Unicode(
        "",
        config=True,
        help="""Kubeconfig file with which the dashboard reaches Kubernetes
        (services, templates) when it runs outside a pod. Empty means the
        pod's service account, else ``$KUBECONFIG``.""",
    )

    hubNamespace = Unicode(
        "",
        config=True,
        help="""Namespace of the hub and the dashboard; claims of
        ``serviceURLPrefixes`` are kept there. Empty means the namespace of the
        pod's service account, or ``default`` outside a pod.""",
    )

    # --- look ---------------------------------------------------------------------

    dashboardTitle = Unicode(
        "Karvdash",
        config=True,
        help="Title shown in the navigation bar and the browser tab.",
    )

    dashboardTheme = CaselessStrEnum(
        ["evolve", "CARV"],
        "evolve",
        config=True,
        help="Look of the pages: ``evolve`` or ``CARV``.",
    )

    issuesURL = Unicode(
        "",
        config=True,
        help="If set, the user menu links to it as \"Report an issue\".",
    )

    dashboardLogo = Unicode(
        "",
        config=True,
        help="""Logo shown before the title in the navigation bar of the hub's
        and the dashboard's pages: an http(s) URL the browser loads it from,
        or the absolute path of a PNG, JPEG, GIF, WebP or SVG file of at most
        512 KiB, which the hub reads at start-up (a missing or bad file stops
        it) and serves at ``/hub/theme/logo``. Empty: the title alone.""",
    )

    dashboardFavicon = Unicode(
        "",
        config=True,
        help="""Icon of the browser tab: an http(s) URL, or the absolute path of
        an ICO, PNG, GIF, JPEG, WebP or SVG file of at most 128 KiB, read at
        start-up and served at ``/hub/theme/favicon``. Empty: JupyterHub's.""",
    )

    # --- Argo ---------------------------------------------------------------------

    argoURL = Unicode(
        "",
        config=True,
        help="URL of an Argo Workflows UI to link to from the dashboard.",
    )

    argoNamespace = Unicode(
        "",
        config=True,
        help="Namespace of a shared Argo installation whose service accounts users may use.",
    )

    # --- accounts -----------------------------------------------------------------

    authenticator = Enum(
        ["native", "oauth"],
        "native",
        config=True,
        help="""How people log in: ``native`` (accounts in the hub, sign-up with
        admin approval) or ``oauth`` (an OpenID Connect / OAuth2 provider,
        configured under ``GenericOAuthenticator``).""",
    )

    adminUsername = Unicode(
        "admin",
        config=True,
        help="Name of the administrator account created at start-up.",
    )

    adminPassword = Unicode(
        "",
        config=True,
        help="""Password of the administrator account when it is created. Empty
        means: generate one at first start, store it in
        ``<stateDir>/admin-password`` (mode 0600) and print where it is.""",
    )

    minimumPasswordLength = Integer(
        8,
        config=True,
        help="Shortest password accepted at sign-up and password change.",
    )

    # --- dashboard service ----------------------------------------------------------

    dashboardURL = Unicode(
        "",
        config=True,
        help="""Where the hub reaches a dashboard service that runs on its own
        (the chart's dashboard Deployment), e.g. ``http://karvdash-dashboard:8080``.
        Empty means the hub starts the dashboard itself on 127.0.0.1.""",
    )

    dashboardPort = Integer(
        0,
        config=True,
        help="""Loopback port of the dashboard the hub starts itself; 0 picks a
        free port at every start.""",
    )

    dashboardAPIToken = Unicode(
        "",
        config=True,
        help="""API token shared by the hub and a dashboard that runs on its own
        (with ``dashboardURL``); the chart generates it. It must be random:
        the hub checks it as a token it made, with one round of hashing.
        Unused when the hub starts the dashboard (the hub makes one).""",
    )

    uploadExpiry = Integer(
        86400,
        config=True,
        help="""Seconds after which an unfinished upload (its staged part in
        ``uploads/``) is removed.""",
    )

    # --- admission webhook ------------------------------------------------------------

    webhookAddress = Unicode(
        "127.0.0.1",
        config=True,
        help="""Address the admission webhook listens on (``karvdash-webhook``).
        The chart sets ``0.0.0.0`` inside the webhook's pod.""",
    )

    webhookPort = Integer(
        8443,
        config=True,
        help="HTTPS port of the admission webhook.",
    )

    webhookCertFile = Unicode(
        "",
        config=True,
        help="""PEM certificate (chain) the webhook serves; the chart mounts
        the one cert-manager issues. Reloaded when the file changes.""",
    )

    webhookKeyFile = Unicode(
        "",
        config=True,
        help="PEM private key of ``webhookCertFile``.",
    )

    # --- logging --------------------------------------------------------------------

    debug = Bool(
        False,
        config=True,
        help="""Log debug messages in the hub (``JupyterHub.log_level``), the
        dashboard and the webhook.""",
    )

    # --- validation -----------------------------------------------------------------

    @validate("stateDir", "filesMountPath")
    def _valid_dir(self, proposal):
        value = proposal["value"]
        if value == "" and proposal["trait"].name == "filesMountPath":
            return value
        return check_absolute_path(value)

    @validate("filesURL")
    def _valid_files_url(self, proposal):
        value = proposal["value"]
        if value:
            parse_files_url(value)
        return value

    @validate("filesS3SecretKeyFile")
    def _valid_secret_key_file(self, proposal):
        return proposal["value"] and check_absolute_path(proposal["value"])

    @validate("filesS3Region")
    def _valid_region(self, proposal):
        if not re.match(r"^[a-z0-9-]{1,32}\Z", proposal["value"]):
            raise TraitError(f"{proposal['value']!r} is not a region name (lowercase letters, digits and '-')")
        return proposal["value"]

    @validate("filesSize")
    def _valid_quantity(self, proposal):
        if not QUANTITY.match(proposal["value"]):
            raise TraitError(f"{proposal['value']!r} is not a Kubernetes quantity such as 1Pi or 500Gi")
        return proposal["value"]

    @validate("ingressURL")
    def _valid_ingress_url(self, proposal):
        return proposal["value"] and _check_http_url("ingressURL", proposal["value"], allow_path=False)

    @validate("dockerRegistryURL", "issuesURL", "argoURL")
    def _valid_url(self, proposal):
        return proposal["value"] and _check_http_url(proposal["trait"].name, proposal["value"])

    @validate("dockerRegistryCert")
    def _valid_cert(self, proposal):
        # no I/O here: check_files reads a named file
        value = proposal["value"].strip()
        if not value:
            return ""
        if registry_cert_file(value):
            check_absolute_path(value)
        elif not _is_pem_certificate(value.encode()):
            raise TraitError("is not a PEM certificate")
        return proposal["value"]

    @validate("allowedHostPathDirs")
    def _valid_host_paths(self, proposal):
        return [check_absolute_path(p) for p in proposal["value"]]

    @validate("serviceURLPrefixes")
    def _valid_prefixes(self, proposal):
        for prefix in proposal["value"]:
            if not DNS_LABEL.match(prefix):
                raise TraitError(f"{prefix!r} is not a DNS label (lowercase letters, digits and '-')")
        if len(set(proposal["value"])) != len(proposal["value"]):
            raise TraitError("has duplicates")
        return proposal["value"]

    @validate("disabledDatasetTemplates")
    def _valid_dataset_types(self, proposal):
        known = {"s3-local", "s3-remote", "h3-local", "h3-remote", "archive"}
        unknown = sorted(set(proposal["value"]) - known)
        if unknown:
            raise TraitError(f"unknown dataset types {unknown}; known: {sorted(known)}")
        return proposal["value"]

    @validate("templateMaxObjects")
    def _valid_template_max_objects(self, proposal):
        # templates.MAX_TEMPLATE_NODES bounds every template beyond this
        if not 1 <= proposal["value"] <= 1000:
            raise TraitError("must be from 1 to 1000")
        return proposal["value"]

    @validate("serviceAuthURL")
    def _valid_service_auth_url(self, proposal):
        return proposal["value"] and _check_http_url("serviceAuthURL", proposal["value"])

    @validate("dashboardLogo", "dashboardFavicon")
    def _valid_theme_image(self, proposal):
        # the hub reads a named file at start-up (karvdash_hub.theme.images)
        value = proposal["value"].strip()
        if not value:
            return ""
        if value.startswith("/"):
            return check_absolute_path(value)
        if not value.lower().startswith(("http://", "https://")):
            raise TraitError(f"{value!r} is neither an http(s) URL nor an absolute file path")
        return _check_http_url(proposal["trait"].name, value)

    @validate("kubeconfig")
    def _valid_kubeconfig(self, proposal):
        return proposal["value"] and check_absolute_path(proposal["value"])

    @validate("ingressClassName")
    def _valid_ingress_class(self, proposal):
        value = proposal["value"]
        if value and not DNS_LABEL.match(value):
            raise TraitError(f"{value!r} is not an IngressClass name")
        return value

    @validate("argoNamespace", "hubNamespace", "ingressControllerNamespace")
    def _valid_namespace(self, proposal):
        value = proposal["value"]
        if value and not DNS_LABEL.match(value):
            raise TraitError(f"{value!r} is not a namespace name")
        return value

    @validate("allowedPriorityClasses")
    def _valid_priority_classes(self, proposal):
        for name in proposal["value"]:
            if not DNS_SUBDOMAIN.match(name):
                raise TraitError(f"{name!r} is not a PriorityClass name")
        return proposal["value"]

    @validate("namespaceTemplate")
    def _valid_namespace_template(self, proposal):
        value = proposal["value"]
        rest = value.replace("{username}", "", 1)
        if "{username}" not in value or "{" in rest or "}" in rest:
            raise TraitError(f"{value!r} must contain {{username}} once and no other {{...}} field")
        # the longest usernames must still give a namespace name
        for sample in ("a" * 32, "0" * 32):
            name = value.replace("{username}", sample)
            if not DNS_LABEL.match(name):
                raise TraitError(f"{value!r} gives {name!r} for a 32-character username: not a namespace name")
        return value

    @validate("karvdashctlURL")
    def _valid_karvdashctl_url(self, proposal):
        return proposal["value"] and _check_http_url("karvdashctlURL", proposal["value"])

    @validate("appProxyImage")
    def _valid_image(self, proposal):
        value = proposal["value"]
        if not value or any(c.isspace() for c in value):
            raise TraitError(f"{value!r} is not an image reference")
        return value

    @validate("adminUsername")
    def _valid_admin_name(self, proposal):
        if not re.match(USERNAME_PATTERN, proposal["value"]):
            raise TraitError("must be lowercase letters and digits")
        return proposal["value"]

    @validate("dashboardURL")
    def _valid_dashboard_url(self, proposal):
        return proposal["value"] and _check_http_url("dashboardURL", proposal["value"], allow_path=False)

    @validate("dashboardPort")
    def _valid_dashboard_port(self, proposal):
        if not 0 <= proposal["value"] <= 65535:
            raise TraitError("must be a port number (0 to 65535)")
        return proposal["value"]

    @validate("webhookPort")
    def _valid_webhook_port(self, proposal):
        if not 1 <= proposal["value"] <= 65535:
            raise TraitError("must be a port number (1 to 65535)")
        return proposal["value"]

    @validate("webhookCertFile", "webhookKeyFile")
    def _valid_webhook_tls_file(self, proposal):
        return proposal["value"] and check_absolute_path(proposal["value"])

    @validate("uploadExpiry")
    def _valid_upload_expiry(self, proposal):
        if proposal["value"] < 60:
            raise TraitError("must be at least 60 seconds")
        return proposal["value"]

    @validate("spawnConcurrency")
    def _valid_spawn_concurrency(self, proposal):
        if proposal["value"] < 0:
            raise TraitError("must be 0 (sized from the machine) or more")
        return proposal["value"]

    @validate("spawnQueueTimeout")
    def _valid_spawn_queue_timeout(self, proposal):
        if proposal["value"] < 1:
            raise TraitError("must be at least 1 second")
        return proposal["value"]

    @validate("minimumPasswordLength")
    def _valid_password_length(self, proposal):
        if proposal["value"] < 1:
            raise TraitError("must be at least 1")
        return proposal["value"]

    def check(self) -> None:
        """Checks that need several settings at once."""
        if self.mode == "kubernetes" and not self.ingressURL:
            raise SettingsError("ingressURL", "is required in kubernetes mode")
        scheme, _, _ = parse_files_url(self.files_url)
        if scheme == "nfs" and not self.filesMountPath:
            raise SettingsError(
                "filesMountPath",
                "is required with an nfs:// filesURL: the hub and the dashboard need the export mounted somewhere",
            )
        if scheme in S3_SCHEMES:
            if not self.filesS3AccessKey:
                raise SettingsError("filesS3AccessKey", f"is required with a {scheme}:// filesURL")
            if not self.filesS3SecretKey and not self.filesS3SecretKeyFile:
                raise SettingsError(
                    "filesS3SecretKey", f"(or filesS3SecretKeyFile) is required with a {scheme}:// filesURL"
                )
        if self.dashboardURL and len(self.dashboardAPIToken) < 32:
            raise SettingsError(
                "dashboardAPIToken",
                "is required (32 characters or more) when dashboardURL is set: the hub and the dashboard share it",
            )
        if self.adminPassword and len(self.adminPassword) < self.minimumPasswordLength:
            raise SettingsError(
                "adminPassword", f"is shorter than minimumPasswordLength ({self.minimumPasswordLength})"
            )

    # --- derived values -------------------------------------------------------------

    @property
    def spawn_concurrency(self) -> int:
        """``spawnConcurrency``, sized from the machine when it is 0."""
        if self.spawnConcurrency:
            return self.spawnConcurrency
        if self.mode == "local":
            return 4 * max(1, len(os.sched_getaffinity(0)))
        return 20

    @property
    def files_url(self) -> str:
        return self.filesURL or f"file://{self.stateDir}/files"

    @property
    def files_root(self) -> Path:
        """Where this process reads and writes the file domains (for an S3
        ``filesURL``: where the dashboard stages uploads)."""
        if self.filesMountPath:
            return Path(self.filesMountPath)
        scheme, _, path = parse_files_url(self.files_url)
        if scheme in S3_SCHEMES:
            return Path(self.stateDir) / "files"
        return Path(path)

    @property
    def files_s3_secret_key(self) -> str:
        """The secret key of an S3 ``filesURL`` (the file read at each call)."""
        if self.filesS3SecretKeyFile:
            return Path(self.filesS3SecretKeyFile).read_text().strip()
        return self.filesS3SecretKey

    @property
    def hub_db_url(self) -> str:
        """The hub's database: the values file's ``JupyterHub.db_url``, else a
        SQLite file in the state folder."""
        chosen = self.config.get("JupyterHub", {}).get("db_url")
        return chosen or f"sqlite:///{Path(self.stateDir) / 'jupyterhub.sqlite'}"

    @property
    def ingress_domain(self) -> str:
        return urlsplit(self.ingressURL).hostname or ""

    def user_namespace(self, username: str) -> str:
        """The namespace of ``username`` (``namespaceTemplate``)."""
        if not re.match(USERNAME_PATTERN, username):
            raise ValueError(f"{username!r} is not a karvdash username")
        return self.namespaceTemplate.replace("{username}", username)

    @property
    def dashboard_api_url(self) -> str:
        """Where pods reach the dashboard's REST API."""
        return self.karvdashctlURL or f"{self.ingressURL.rstrip('/')}{SERVICE_PREFIX}{KARVDASH2_API_PATH}"


def registry_cert_file(setting: str) -> str:
    """The file ``dockerRegistryCert`` names ('' when it is empty or holds
    the PEM text itself)."""
    value = setting.strip()
    return "" if not value or value.startswith("-----BEGIN") else os.path.normpath(value)


def _is_pem_certificate(pem: bytes) -> bool:
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        return False
    return True


def check_files(settings: KarvdashConfig) -> None:
    """Checks that read the files settings name (the registry's CA), apart
    from the validators, which do no I/O; :func:`load_settings` runs them."""
    path = registry_cert_file(settings.dockerRegistryCert)
    if path:
        try:
            pem = Path(path).read_bytes()
        except OSError as e:
            raise SettingsError("dockerRegistryCert", f"cannot read {path}: {e.strerror}") from None
        if not _is_pem_certificate(pem):
            raise SettingsError("dockerRegistryCert", "is not a PEM certificate")
    if settings.filesS3SecretKeyFile:
        try:
            secret = settings.files_s3_secret_key
        except (OSError, UnicodeDecodeError) as e:
            raise SettingsError("filesS3SecretKeyFile", f"cannot read {settings.filesS3SecretKeyFile}: {e}") from None
        if not secret:
            raise SettingsError("filesS3SecretKeyFile", f"{settings.filesS3SecretKeyFile} is empty")


# S3 file domains: minio:// over HTTP, minios:// over HTTPS (as Karvdash wrote them)
S3_SCHEMES = ("minio", "minios")
S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
S3_PREFIX_PART = re.compile(r"^[A-Za-z0-9._-]{1,255}\Z")


def parse_files_url(url: str) -> tuple[str, str, str]:
    """Split ``filesURL`` into (scheme, NFS or S3 server or '', absolute
    path); for S3 the path is ``/<bucket>[/<prefix>]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("file", "nfs", *S3_SCHEMES):
        raise TraitError(f"{url!r} must start with file://, nfs://, minio:// or minios://")
    if parts.query or parts.fragment:
        raise TraitError(f"{url!r} must not have a query or fragment")
    path = parts.path
    if parts.scheme in S3_SCHEMES:
        return parts.scheme, _s3_server(url, parts), _s3_path(url, path)
    if parts.scheme == "file":
        if parts.netloc:
            raise TraitError(f"{url!r}: a file:// URL has no host; write file:///absolute/path")
    elif not parts.hostname:
        raise TraitError(f"{url!r}: an nfs:// URL needs a server, nfs://<server>/<path>")
    if not path.startswith("/") or path == "/":
        raise TraitError(f"{url!r} needs an absolute path below /")
    if "\0" in path or ".." in PurePosixPath(path).parts:
        raise TraitError(f"{url!r} has a bad path")
    return parts.scheme, parts.hostname or "", os.path.normpath(path)


def _s3_server(url: str, parts) -> str:
    if parts.username or parts.password:
        raise TraitError(f"{url!r}: credentials go in filesS3AccessKey and filesS3SecretKey, not in the URL")
    if not parts.hostname:
        raise TraitError(f"{url!r}: an S3 URL needs a server, {parts.scheme}://<host>:<port>/<bucket>")
    try:
        port = parts.port
    except ValueError as e:
        raise TraitError(f"{url!r} has a bad port: {e}") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}" if port else host


def _s3_path(url: str, path: str) -> str:
    names = path.strip("/").split("/") if path.strip("/") else []
    if not names or not S3_BUCKET.match(names[0]):
        raise TraitError(f"{url!r} needs a bucket name (3-63 lowercase letters, digits, '.' and '-') after the server")
    if "//" in path.strip("/") or not all(S3_PREFIX_PART.match(n) and n not in (".", "..") for n in names[1:]):
        raise TraitError(f"{url!r}: a prefix inside the bucket is names of letters, digits, '.', '_' and '-'")
    return "/" + "/".join(names)


# --- loading -----------------------------------------------------------------------


def _env_name(trait_name: str) -> str:
    # filesURL -> FILES_URL, dockerRegistryCert -> DOCKER_REGISTRY_CERT
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", trait_name)
    return ENV_PREFIX + snake.upper()


def env_names() -> dict[str, str]:
    """Environment variable name for every setting."""
    return {name: _env_name(name) for name in KarvdashConfig.class_own_traits(config=True)}


def read_values_file(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read a values file: (karvdash settings, extra traitlets config).

    The file is either the chart's whole values (settings under ``karvdash:``,
    traitlets sections under ``hub: {config: ...}`` as in Zero to JupyterHub) or
    just the settings mapping.
    """
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise SettingsError(VALUES_ENV, f"cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise SettingsError(VALUES_ENV, f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SettingsError(VALUES_ENV, f"{path} must hold a mapping")
    if "karvdash" in data or "hub" in data:
        settings = data.get("karvdash") or {}
        hub_config = (data.get("hub") or {}).get("config") or {}
    else:
        settings, hub_config = data, {}
    if not isinstance(settings, dict) or not isinstance(hub_config, dict):
        raise SettingsError(VALUES_ENV, f"{path}: 'karvdash' and 'hub.config' must be mappings")
    return settings, hub_config


def settings_config(environ=None, values_file=None) -> tuple[Config, tuple[str, ...]]:
    """Traitlets config from the values file and the environment, and the
    warnings about Karvdash's names in the values file."""
    environ = os.environ if environ is None else environ
    values_file = values_file or environ.get(VALUES_ENV)
    config = Config()
    warnings: tuple[str, ...] = ()
    traits = KarvdashConfig.class_own_traits(config=True)
    if values_file:
        mapped = map_karvdash_values(*read_values_file(values_file), traits)
        settings, hub_config, warnings = mapped.settings, mapped.hub_config, mapped.warnings
        for section, values in hub_config.items():
            config[section] = Config(values)
        for name, value in settings.items():
            if name not in traits:
                hint = difflib.get_close_matches(name, traits, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                raise SettingsError(name, f"unknown setting in {values_file}{suggestion}")
            config.KarvdashConfig[name] = value
    for name, trait in traits.items():
        env = _env_name(name)
        if env in environ:
            config.KarvdashConfig[name] = parse_setting_text(trait, name, environ[env])
    return config, warnings


def load_settings(config: Config | None = None, environ=None, values_file=None) -> KarvdashConfig:
    """Build and validate the settings; raise SettingsError naming a bad one.

    ``config`` (traitlets config, e.g. from ``jupyterhub_config.py``) wins over
    the environment, which wins over the values file.
    """
    merged, warnings = settings_config(environ=environ, values_file=values_file)
    if config is not None:
        merged.merge(config)
    settings = KarvdashConfig()
    settings.value_warnings = warnings
    traits = settings.traits(config=True)
    # Assign one by one, so that a bad value is reported under its own name.
    for name, value in merged.get("KarvdashConfig", {}).items():
        if name not in traits:
            raise SettingsError(name, "unknown setting")
        try:
            setattr(settings, name, value)
        except TraitError as e:
            raise SettingsError(name, _reason(e)) from None
    settings.config = merged
    check_files(settings)
    settings.check()
    return settings


def _reason(error: TraitError) -> str:
    # traitlets words type errors as "The 'x' trait of a KarvdashConfig instance ..."
    return re.sub(r"^The '\w+' trait of an? \w+ instance ", "", str(error))
