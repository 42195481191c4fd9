"""JupyterHub for one nbgrader course (docs/hub.md). deploy/hub.py writes the settings it reads.

Everything site-specific comes from the JSON file named by $COURSE_HUB_SETTINGS: ports, state
folder, proxy, environment, the class (instructors, graders, students), the role config folder
and the authenticator. To run a real course, keep this file and change the authentication block
(below: OAuthenticator or LTI).
"""
import json
import os

c = get_config()  # noqa: F821 - provided by traitlets when JupyterHub loads this file
S = json.load(open(os.environ["COURSE_HUB_SETTINGS"]))

# Loopback only: the proxy, the hub and its API on 127.0.0.1.
c.JupyterHub.bind_url = f"http://127.0.0.1:{S['port']}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = S["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{S['api_port']}"
c.ConfigurableHTTPProxy.command = [S["proxy"]]
c.JupyterHub.db_url = f"sqlite:///{S['state']}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{S['state']}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{S['state']}/jupyterhub.pid"

# ---- Authentication ---------------------------------------------------------------------
# Loopback test: one shared password for the allowed users (no /etc/shadow, no package), or
# PAM with the local users' own passwords. Anyone with the shared password can log in as any
# allowed user: never expose it beyond 127.0.0.1.
# A real course swaps this block, keeping allowed_users/groups or taking them from the LMS:
#   OAuthenticator (pip install oauthenticator):
#     c.JupyterHub.authenticator_class = "generic-oauth"   # or "github", "google", "azuread", ...
#     c.GenericOAuthenticator.client_id / client_secret / oauth_callback_url / authorize_url / token_url
#     c.GenericOAuthenticator.manage_groups = True   # instructors/graders from the provider's groups
#   LTI 1.3 from the LMS (pip install jupyterhub-ltiauthenticator):
#     c.JupyterHub.authenticator_class = "ltiauthenticator.lti13.auth.LTI13Authenticator"
#     c.LTI13Authenticator.issuer / client_id / authorize_url / jwks_endpoint
#   Users then need Unix accounts (LocalAuthenticator.create_system_users) or another spawner
#   (DockerSpawner, KubeSpawner) with the exchange mounted at the same path.
if S["auth"] == "pam":
    c.JupyterHub.authenticator_class = "pam"
else:
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = S["password"]
staff = S["instructors"] + S["graders"]
c.Authenticator.allowed_users = set(staff + S["students"])
# No hub admins: the course needs none (the shared password does not log in admins either;
# SharedPasswordAuthenticator.admin_password is theirs).
c.JupyterHub.load_groups = {"instructors": {"users": S["instructors"]}, "graders": {"users": S["graders"]}}

# ---- Spawning ---------------------------------------------------------------------------
# Each user's server is a local process as that Unix user (the hub runs as root).
c.JupyterHub.spawner_class = "localprocess"
SINGLEUSER = [f"{S['venv']}/bin/jupyterhub-singleuser"]
c.Spawner.cmd = SINGLEUSER
# The feedback's MathJax settings (deploy/hub.py puts them there), served without a login
c.Spawner.args = [f"--ServerApp.extra_static_paths={S['static']}"]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {"PATH": f"{S['venv']}/bin:/usr/local/bin:/usr/bin:/bin"}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90


def by_role(spawner):
    """Students get the role config folder that hides the instructor tools (it outranks the
    environment's and their own ~/.jupyter). Staff share the course folder through their group,
    so their files are group-writable (umask 007)."""
    if spawner.user.name in staff:
        spawner.cmd = ["/bin/sh", "-c", 'umask 007 && exec "$0" "$@"', *SINGLEUSER]
    else:
        spawner.environment = {**spawner.environment, "JUPYTER_CONFIG_PATH": S["student_config"]}


c.Spawner.pre_spawn_hook = by_role
