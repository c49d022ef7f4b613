"""configure(c): what the settings turn into in JupyterHub's config."""

from traitlets.config import Config

from karvdash_hub.hub.config import configure


def test_local_native_hub_listens_on_loopback_and_approval_is_the_allow_list(state_env, tmp_path):
    c = Config()
    configure(c)
    assert c.JupyterHub.ip == "127.0.0.1" and c.JupyterHub.hub_ip == "127.0.0.1"
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    assert c.JupyterHub.authenticator_class.__name__ == "KarvdashAuthenticator"
    assert c.JupyterHub.spawner_class.__name__ == "KarvdashLocalSpawner"
    assert c.JupyterHub.allow_named_servers is True
    assert c.Authenticator.admin_users == {"admin"}
    assert c.Authenticator.allow_all is True


def test_single_sign_on_lets_nobody_in_by_default(state_env):
    state_env.setenv("KARVDASH_AUTHENTICATOR", "oauth")
    c = Config()
    configure(c)
    assert c.JupyterHub.authenticator_class.__name__ == "KarvdashOAuthenticator"
    # the provider's accounts are not all allowed, and no local name is admin
    assert "allow_all" not in c.Authenticator
    assert "admin_users" not in c.Authenticator


def test_deployment_config_wins(state_env):
    c = Config()
    c.JupyterHub.db_url = "postgresql://hub@db.example.org/hub"
    c.JupyterHub.template_vars = {"karvdash_title": "Own title"}
    configure(c)
    assert c.JupyterHub.db_url == "postgresql://hub@db.example.org/hub"
    assert c.JupyterHub.template_vars["karvdash_title"] == "Own title"
    assert c.JupyterHub.template_vars["karvdash_version"]


def test_local_servers_get_longer_to_answer_unless_the_deployment_says(state_env):
    c = Config()
    configure(c)
    assert c.Spawner.http_timeout == 60
    chosen = Config()
    chosen.Spawner.http_timeout = 45
    configure(chosen)
    assert chosen.Spawner.http_timeout == 45
