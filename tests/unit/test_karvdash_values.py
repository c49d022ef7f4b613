"""Values from Karvdash: the one mapping of a Karvdash 2.x ``karvdash:``
section to karvdash-hub's settings (karvdash_hub/core/karvdashvalues.py),
key by key, and as load_settings applies it to a values file."""

import copy
import hashlib
from pathlib import Path

import pytest
import yaml

from karvdash_hub.core import karvdashvalues
from karvdash_hub.core.karvdashvalues import enabled
from karvdash_hub.core.settings import KarvdashConfig, SettingsError, load_settings

KARVDASH_VALUES = Path(__file__).resolve().parents[1] / "values" / "karvdash-2.yaml"


def map_karvdash_values(settings: dict, hub_config: dict | None = None):
    return karvdashvalues.map_karvdash_values(settings, hub_config, KarvdashConfig.class_own_traits(config=True))


def mapped(**settings):
    return map_karvdash_values(settings)


@pytest.mark.parametrize("old, value, new, expected", [
    ("dockerRegistry", "https://registry.example.org:5000", "dockerRegistryURL", "https://registry.example.org:5000"),
    ("dockerRegistryNoVerify", "1", "dockerRegistryInsecure", True),
    ("dockerRegistryNoVerify", "false", "dockerRegistryInsecure", False),
    ("djangoDebug", "yes", "debug", True),
    ("djangoDebug", "anything", "debug", True),
    ("stateHostPath", "/mnt/nfs/karvdash", "stateDir", "/mnt/nfs/karvdash"),
])
def test_renamed_keys(old, value, new, expected):
    result = mapped(**{old: value})
    assert result.settings == {new: expected}
    assert result.hub_config == {}
    assert result.warnings == (f"Karvdash value {old} is deprecated: it is read as {new}; rename it",)


def test_django_secret_is_the_cookie_secret():
    result = mapped(djangoSecret="s" * 50)
    assert result.settings == {}
    assert result.hub_config == {"JupyterHub": {"cookie_secret": hashlib.sha256(b"s" * 50).hexdigest()}}
    assert result.warnings == (
        ("Karvdash value djangoSecret is deprecated: it is read as hub.config.JupyterHub.cookie_secret (its SHA-256); "
         "set that instead"),)
    # JupyterHub takes 64 hex digits as its 32 bytes
    assert len(bytes.fromhex(result.hub_config["JupyterHub"]["cookie_secret"])) == 32


def test_logs_host_path_is_the_hub_log_file():
    result = map_karvdash_values({"logsHostPath": "/var/log/karvdash/"}, {"JupyterHub": {"log_level": "INFO"}})
    assert result.settings == {}
    assert result.hub_config == {"JupyterHub": {"log_level": "INFO",
                                                "extra_log_file": "/var/log/karvdash/jupyterhub.log"}}
    assert result.warnings == (
        ("Karvdash value logsHostPath is deprecated: it is read as hub.config.JupyterHub.extra_log_file "
         "(/var/log/karvdash/jupyterhub.log); set that instead"),)
    with pytest.raises(SettingsError) as error:
        mapped(logsHostPath="logs")
    assert str(error.value) == "setting logsHostPath: 'logs' is not an absolute path"


@pytest.mark.parametrize("old, why", [
    ("stateVolumeClaim", ("it names a PersistentVolumeClaim, which only the Helm chart mounts (as the hub's state "
                          "volume, at stateDir); the hub keeps its state in stateDir")),
    ("logsVolumeClaim", ("it names a PersistentVolumeClaim, which only the Helm chart mounts (the hub writes "
                         "jupyterhub.log there); set hub.config.JupyterHub.extra_log_file for a log file")),
    ("htpasswdExportDir", ("karvdash-hub exports no htpasswd file: the hub's own login protects services "
                           "(ingress-nginx asks the dashboard), so there is no password file to export")),
])
def test_keys_that_no_longer_apply_are_accepted_with_a_warning(old, why):
    result = mapped(**{old: "karvdash-something"})
    assert (result.settings, result.hub_config) == ({}, {})
    assert result.warnings == (f"Karvdash value {old} no longer applies: {why}; it is ignored",)


def test_karvdash_keys_without_a_value_say_nothing():
    for value in ("", None):
        result = mapped(**{key: value for key in (
            "dockerRegistry", "dockerRegistryNoVerify", "djangoDebug", "djangoSecret", "stateHostPath",
            "stateVolumeClaim", "logsHostPath", "logsVolumeClaim", "htpasswdExportDir")})
        assert result == map_karvdash_values({})


def test_empty_means_unset():
    result = mapped(issuesURL="", dashboardTitle="", dashboardTheme="", filesSize=None, adminPassword=None,
                    disabledServiceTemplates=None, serviceURLPrefixes="", minimumPasswordLength="", gpuNodeSelector="")
    # all take their defaults
    assert result.settings == {}
    assert result.warnings == ()
    # where an empty value says something of its own, it is kept
    assert mapped(ingressClassName="", ingressControllerNamespace="").settings == {
        "ingressClassName": "", "ingressControllerNamespace": ""}


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("0", False), ("true", True), ("false", False), ("yes", True), ("no", False), ("", False),
    ("on", True), ("off", False), (" Yes ", True), (True, True), (False, False), (None, False),
    # Karvdash: "set to anything to enable"
    ("enabled", True), (1, True),
])
def test_set_to_anything_to_enable(value, expected):
    assert enabled(value) is expected
    assert mapped(datasetsAvailable=value).settings == {"datasetsAvailable": expected}


def test_other_boolean_settings_take_the_environments_words():
    assert mapped(serviceAuthAdmins="yes", serviceAuthOptional="0", deletePrivateFilesWithUser="").settings == {
        "serviceAuthAdmins": True, "serviceAuthOptional": False, "deletePrivateFilesWithUser": False}
    with pytest.raises(SettingsError) as error:
        mapped(serviceAuthAdmins="maybe")
    assert str(error.value) == "setting serviceAuthAdmins: 'maybe' is not a boolean (true/false)"


def test_lists_numbers_and_mappings_given_as_text():
    assert mapped(allowedHostPathDirs="/opt/a:/opt/b").settings == {"allowedHostPathDirs": ["/opt/a", "/opt/b"]}
    assert mapped(allowedHostPathDirs=["/opt/a"]).settings == {"allowedHostPathDirs": ["/opt/a"]}
    assert mapped(serviceURLPrefixes="lab1, lab2", disabledProfiles='["gpu"]').settings == {
        "serviceURLPrefixes": ["lab1", "lab2"], "disabledProfiles": ["gpu"]}
    assert mapped(minimumPasswordLength="12", gpuNodeSelector="{gpu: 'yes'}").settings == {
        "minimumPasswordLength": 12, "gpuNodeSelector": {"gpu": "yes"}}
    with pytest.raises(SettingsError, match="setting minimumPasswordLength: 'long' is not a whole number"):
        mapped(minimumPasswordLength="long")


def test_a_karvdash_key_and_its_new_name_set_differently_is_refused():
    with pytest.raises(SettingsError) as error:
        mapped(dockerRegistry="https://a.example.org", dockerRegistryURL="https://b.example.org")
    assert str(error.value) == ("setting dockerRegistry: is Karvdash's name of dockerRegistryURL, which is set too: "
                                "keep only dockerRegistryURL")
    with pytest.raises(SettingsError, match="setting djangoDebug: .* keep only debug"):
        mapped(djangoDebug="1", debug="false")
    with pytest.raises(SettingsError, match="setting djangoSecret: .* keep only hub.config.JupyterHub.cookie_secret"):
        map_karvdash_values({"djangoSecret": "x"}, {"JupyterHub": {"cookie_secret": "00" * 32}})
    with pytest.raises(SettingsError, match="setting hub.config.JupyterHub: must be a mapping"):
        map_karvdash_values({"djangoSecret": "x"}, {"JupyterHub": "nope"})
    # the same value twice, or an empty new one, is fine
    assert mapped(dockerRegistry="https://a.example.org", dockerRegistryURL="https://a.example.org").settings == {
        "dockerRegistryURL": "https://a.example.org"}
    assert mapped(dockerRegistry="https://a.example.org", dockerRegistryURL="").settings == {
        "dockerRegistryURL": "https://a.example.org"}
    assert mapped(djangoDebug="1", debug="yes").settings == {"debug": True}


def test_unknown_keys_are_left_for_the_caller_and_the_input_is_not_changed():
    settings = {"fileURL": "file:///x", "djangoSecret": "x", "datasetsAvailable": "1"}
    hub_config = {"JupyterHub": {"log_level": "DEBUG"}}
    before = copy.deepcopy((settings, hub_config))
    result = map_karvdash_values(settings, hub_config)
    assert result.settings == {"fileURL": "file:///x", "datasetsAvailable": True}
    assert (settings, hub_config) == before


def test_the_karvdash_values_file_exactly():
    original = yaml.safe_load(KARVDASH_VALUES.read_text())["karvdash"]
    result = map_karvdash_values(original)
    assert result.settings == {
        "adminPassword": "lab-admin-password",
        "dashboardTitle": "Lab Dashboard",
        "dashboardTheme": "CARV",
        "ingressURL": "https://lab.example.org",
        "dockerRegistryCert": original["dockerRegistryCert"],
        "datasetsAvailable": True,
        "filesURL": "file:///mnt/nfs",
        "filesSize": "1Pi",
        "allowedHostPathDirs": ["/opt/a", "/opt/b"],
        "disabledServiceTemplates": ["kafka.template.yaml", "neo4j.template.yaml"],
        "disabledDatasetTemplates": ["h3-local", "h3-remote"],
        "serviceURLPrefixes": ["lab1", "lab2"],
        "argoURL": "https://argo.lab.example.org",
        "argoNamespace": "argo",
        "stateDir": "/mnt/nfs/karvdash",
        "debug": True,
        "dockerRegistryURL": "https://registry.example.org:5000",
        "dockerRegistryInsecure": True,
    }
    assert result.hub_config == {"JupyterHub": {
        "cookie_secret": hashlib.sha256(original["djangoSecret"].encode()).hexdigest(),
        "extra_log_file": "/mnt/nfs/karvdash-logs/jupyterhub.log",
    }}
    assert [w.split()[2] for w in result.warnings] == [
        "stateVolumeClaim", "stateHostPath", "logsVolumeClaim", "logsHostPath", "djangoSecret", "djangoDebug",
        "htpasswdExportDir", "dockerRegistry", "dockerRegistryNoVerify"]


def test_load_settings_maps_a_values_file_and_keeps_its_warnings(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "image": "carvicsforth/karvdash:v2.6.0",
        "rbac": {"create": True},
        "karvdash": {"dockerRegistry": "http://127.0.0.1:5000", "datasetsAvailable": "1", "issuesURL": "",
                     "allowedHostPathDirs": "/opt/a:/opt/b", "djangoDebug": "1", "stateHostPath": str(tmp_path / "s")},
        "hub": {"config": {"JupyterHub": {"log_level": "INFO"}}},
    }, sort_keys=False))
    settings = load_settings(values_file=values, environ={})
    assert (settings.dockerRegistryURL, settings.datasetsAvailable, settings.issuesURL, settings.debug) == (
        "http://127.0.0.1:5000", True, "", True)
    assert settings.allowedHostPathDirs == ["/opt/a", "/opt/b"]
    assert settings.stateDir == str(tmp_path / "s")
    assert settings.config.JupyterHub.log_level == "INFO"
    assert settings.value_warnings == (
        "Karvdash value dockerRegistry is deprecated: it is read as dockerRegistryURL; rename it",
        "Karvdash value djangoDebug is deprecated: it is read as debug; rename it",
        "Karvdash value stateHostPath is deprecated: it is read as stateDir; rename it",
    )
    # the environment still wins over the values file
    assert load_settings(values_file=values, environ={"KARVDASH_DEBUG": "false"}).debug is False
    # without a values file, nothing to warn about
    assert load_settings(environ={}).value_warnings == ()
    # a misspelt key is still refused by name
    values.write_text("karvdash: {dockerRegistryUrl: 'http://127.0.0.1:5000'}\n")
    with pytest.raises(SettingsError, match="did you mean 'dockerRegistryURL'"):
        load_settings(values_file=values, environ={})
