"""The settings model: every setting validated at start-up, from a values
file, the environment and traitlets config."""

import os
import stat

import pytest
from traitlets.config import Config

from karvdash_hub.core.settings import KarvdashConfig, SettingsError, env_names, load_settings


def load(**env):
    return load_settings(environ={f"KARVDASH_{k}": v for k, v in env.items()})


def test_defaults_are_a_working_local_deployment(tmp_path):
    settings = load(STATE_DIR=str(tmp_path))
    assert settings.mode == "local"
    assert settings.files_url == f"file://{tmp_path}/files"
    assert settings.files_root == tmp_path / "files"
    assert settings.dashboardTheme == "evolve"
    assert settings.adminPassword == ""


def test_every_setting_has_help_and_an_environment_name():
    names = env_names()
    for name, trait in KarvdashConfig.class_own_traits(config=True).items():
        assert trait.help.strip(), f"{name} has no help"
        assert names[name].startswith("KARVDASH_")
    assert names["filesURL"] == "KARVDASH_FILES_URL"
    assert names["datasetsAPIGroup"] == "KARVDASH_DATASETS_API_GROUP"
    assert names["serviceURLPrefixes"] == "KARVDASH_SERVICE_URL_PREFIXES"


def test_original_chart_values_are_all_settings():
    # the Helm table of the original, less what the hub replaces (Django's
    # secret and debug flag, the image, logs volumes, htpasswd export)
    original = {
        "ingressURL", "filesURL", "filesSize", "dockerRegistryURL", "dockerRegistryCert",
        "datasetsAvailable", "allowedHostPathDirs", "disabledServiceTemplates",
        "disabledDatasetTemplates", "serviceURLPrefixes", "dashboardTitle", "dashboardTheme",
        "issuesURL", "argoURL", "argoNamespace", "adminPassword",
    }
    assert original <= set(KarvdashConfig.class_own_traits(config=True))


@pytest.mark.parametrize(
    "env, setting, words",
    [
        ({"FILES_URL": "http://server/files"}, "filesURL", "file://, nfs://, minio:// or minios://"),
        ({"FILES_URL": "file://relative/path"}, "filesURL", "no host"),
        ({"FILES_URL": "file:///"}, "filesURL", "absolute path"),
        ({"FILES_URL": "nfs:///export"}, "filesURL", "needs a server"),
        ({"FILES_URL": "file:///data/../etc"}, "filesURL", "bad path"),
        ({"STATE_DIR": "relative/state"}, "stateDir", "not an absolute path"),
        ({"INGRESS_URL": "example.com"}, "ingressURL", "http:// or https://"),
        ({"INGRESS_URL": "https://example.com/path"}, "ingressURL", "must not have a path"),
        ({"INGRESS_URL": "https://example.com:99999"}, "ingressURL", "bad port"),
        ({"ISSUES_URL": "ftp://x.org"}, "issuesURL", "http"),
        ({"DOCKER_REGISTRY_URL": "registry:5000"}, "dockerRegistryURL", "http"),
        ({"DOCKER_REGISTRY_CERT": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"}, "dockerRegistryCert", "PEM"),
        ({"DOCKER_REGISTRY_CERT": "/no/such/ca.pem"}, "dockerRegistryCert", "cannot read"),
        ({"DATASETS_AVAILABLE": "maybe"}, "datasetsAvailable", "not a boolean"),
        ({"ALLOWED_HOST_PATH_DIRS": "/data:relative"}, "allowedHostPathDirs", "not an absolute path"),
        ({"SERVICE_URL_PREFIXES": "ok,Not_A_Label"}, "serviceURLPrefixes", "DNS label"),
        ({"SERVICE_URL_PREFIXES": "a,a"}, "serviceURLPrefixes", "duplicates"),
        ({"DISABLED_DATASET_TEMPLATES": "s3-local,ftp"}, "disabledDatasetTemplates", "unknown dataset types"),
        ({"DASHBOARD_THEME": "pink"}, "dashboardTheme", "pink"),
        ({"MODE": "k8s"}, "mode", "k8s"),
        ({"MODE": "kubernetes"}, "ingressURL", "required in kubernetes mode"),
        ({"ARGO_NAMESPACE": "Argo"}, "argoNamespace", "not a namespace"),
        ({"ADMIN_USERNAME": "Admin"}, "adminUsername", "lowercase"),
        ({"FILES_SIZE": "lots"}, "filesSize", "quantity"),
        ({"MINIMUM_PASSWORD_LENGTH": "x"}, "minimumPasswordLength", "whole number"),
        ({"ADMIN_PASSWORD": "short"}, "adminPassword", "shorter than"),
        ({"FILES_URL": "nfs://files.example.org/export"}, "filesMountPath", "required with an nfs://"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(env, setting, words):
    with pytest.raises(SettingsError) as error:
        load(**env)
    assert error.value.setting == setting
    assert str(error.value).startswith(f"setting {setting}: ")
    assert words in str(error.value)


def test_environment_values_are_parsed_by_type():
    settings = load(
        DATASETS_AVAILABLE="yes",
        ALLOWED_HOST_PATH_DIRS="/data/:/scratch//x",
        DISABLED_SERVICE_TEMPLATES='["kafka.template.yaml", "neo4j.template.yaml"]',
        SERVICE_URL_PREFIXES="lab1, lab2",
        DASHBOARD_THEME="carv",
        MINIMUM_PASSWORD_LENGTH="12",
    )
    assert settings.datasetsAvailable is True
    assert settings.allowedHostPathDirs == ["/data", "/scratch/x"]
    assert settings.disabledServiceTemplates == ["kafka.template.yaml", "neo4j.template.yaml"]
    assert settings.serviceURLPrefixes == ["lab1", "lab2"]
    assert settings.dashboardTheme == "CARV"
    assert settings.minimumPasswordLength == 12
    assert load(DATASETS_AVAILABLE="").datasetsAvailable is False


def test_values_file_in_chart_shape_with_hub_config(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(
        "karvdash:\n"
        "  dashboardTitle: Lab\n"
        "  filesURL: nfs://files.example.org/export/karvdash\n"
        "  filesMountPath: /srv/files\n"
        "hub:\n"
        "  config:\n"
        "    GenericOAuthenticator:\n"
        "      client_id: hub\n"
    )
    settings = load_settings(environ={"KARVDASH_VALUES": str(values)})
    assert settings.dashboardTitle == "Lab"
    assert settings.files_root.as_posix() == "/srv/files"
    assert settings.config.GenericOAuthenticator.client_id == "hub"


def test_precedence_config_over_environment_over_values_file(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("dashboardTitle: From file\nissuesURL: https://issues.example.org/\n")
    env = {"KARVDASH_VALUES": str(values), "KARVDASH_DASHBOARD_TITLE": "From env"}
    assert load_settings(environ=env).dashboardTitle == "From env"
    assert load_settings(environ=env).issuesURL == "https://issues.example.org/"
    config = Config()
    config.KarvdashConfig.dashboardTitle = "From config"
    assert load_settings(config=config, environ=env).dashboardTitle == "From config"


def test_values_file_mistakes_are_named(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("filesUrl: file:///data\n")
    with pytest.raises(SettingsError, match="did you mean 'filesURL'"):
        load_settings(environ={"KARVDASH_VALUES": str(values)})
    values.write_text("karvdash: [1, 2]\n")
    with pytest.raises(SettingsError, match="must be mappings"):
        load_settings(environ={"KARVDASH_VALUES": str(values)})
    values.write_text("karvdash: {dashboardTitle: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(environ={"KARVDASH_VALUES": str(values)})
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(environ={"KARVDASH_VALUES": str(tmp_path / "missing.yaml")})


def test_unknown_setting_in_traitlets_config_is_refused():
    config = Config()
    config.KarvdashConfig.filesUrl = "file:///data"
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings(config=config, environ={})


def test_registry_certificate_from_file(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "ca.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert load(DOCKER_REGISTRY_CERT=str(pem)).dockerRegistryCert == str(pem)
    assert load(DOCKER_REGISTRY_CERT=pem.read_text()).dockerRegistryCert.startswith("-----BEGIN")


def test_nfs_files_url_parts():
    from karvdash_hub.core.settings import parse_files_url

    assert parse_files_url("nfs://files.example.org/export/k/") == ("nfs", "files.example.org", "/export/k")
    assert parse_files_url("file:///mnt/nfs") == ("file", "", "/mnt/nfs")


def test_generated_admin_password_is_private_and_stable(tmp_path):
    from karvdash_hub.hub.auth import admin_password

    settings = load(STATE_DIR=str(tmp_path))
    password, path, generated = admin_password(settings)
    assert generated and len(password) >= 16
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert admin_password(settings) == (password, path, False)
    assert admin_password(load(STATE_DIR=str(tmp_path), ADMIN_PASSWORD="given-password")) == (
        "given-password", None, False,
    )


def test_usernames_with_a_trailing_newline_are_refused():
    import re

    from karvdash_hub.core.settings import USERNAME_PATTERN

    assert re.match(USERNAME_PATTERN, "alice")
    assert not re.match(USERNAME_PATTERN, "alice\n")
    with pytest.raises(SettingsError, match="adminUsername"):
        load(ADMIN_USERNAME="admin\n")
