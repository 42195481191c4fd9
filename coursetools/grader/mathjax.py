"""MathJax without a network: the feedback pages and the formgrader use a local MathJax 2.

nbconvert's HTML templates, and nbgrader's ``feedback`` and ``formgrade`` templates, load
MathJax from a CDN; offline, a page then shows raw ``$…$`` and the formgrader stops with
"MathJax is not defined" (its formgrade.js calls ``MathJax.Hub``). The local copy is the one
that the ``jupyter-server-mathjax`` package ships (MathJax 2.7, STIX-Web fonts):

* **Feedback** (opened as a file): :class:`LocalMathJax`, the last of
  ``GenerateFeedback.preprocessors``, hands nbconvert's writer the files of MathJax that a
  page needs, so ``generate_feedback`` writes them to ``mathjax/`` beside each student's
  feedback pages, with the settings ``templates/base/coursetools_mathjax_config.js`` as
  ``mathjax/coursetools-config.js``; ``templates/feedback/mathjax.html.j2`` loads both from there
  (files, not inline scripts: the page's Content-Security-Policy allows scripts from its folder only).
  Served by Jupyter's ``/files/`` (a student opening fetched feedback on a JupyterHub), the page is
  sandboxed: its requests carry no login cookie, so that folder is out of its reach. Where
  ``LocalMathJax.server_url`` is set (``deploy/nbgrader_config.py``: ``/user/{student}/``), the page
  also loads the settings and MathJax from that server's static files, which need no login
  (``<server_url>static/coursetools_mathjax_config.js``, from the folder ``deploy/`` adds to the
  single-user servers' ``extra_static_paths``, and ``<server_url>static/jupyter_server_mathjax/``).
  Whichever copy loads typesets the page; MathJax loads once.
* **Formgrader** (served by Jupyter): ``jupyter-server-mathjax`` is a server extension that
  serves the same files at ``<base_url>static/jupyter_server_mathjax/``;
  ``templates/formgrade/mathjax.html.j2`` loads them from there, its settings written inline.

nbgrader_config.py puts ``templates/`` first in ``HTMLExporter.extra_template_basedirs``, so
these two ``mathjax.html.j2`` replace nbconvert's for nbgrader's two templates only.
"""
import functools
import os
import pathlib
import urllib.parse

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Unicode

TEMPLATES = pathlib.Path(__file__).resolve().parent / "templates"
CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
SERVER_GLOBAL = "coursetools_server_mathjax"   # the template global: the student's server's copy, or ""
FOLDER = "mathjax"                                      # beside the feedback pages
FEEDBACK_URL = f"{FOLDER}/MathJax.js?config={CONFIG}"   # what a feedback page loads
SETTINGS = TEMPLATES / "base" / "coursetools_mathjax_config.js"
SETTINGS_FILE = "coursetools-config.js"                  # beside MathJax.js in the feedback's folder

SERVER_PATH = "static/jupyter_server_mathjax/MathJax.js"  # the formgrader's, under the server's base_url

# Parts of the package that a page with TeX never loads: translations (MathJax stays in
# English unless told otherwise, and the configuration says "en"), the SVG output, and
# the accessibility explorer (only on a reader's request from the menu).
SKIP = ("localization/", "jax/output/SVG/", "extensions/a11y/")


class MathJaxMissing(RuntimeError):
    """jupyter-server-mathjax is not installed."""


def template_dirs():
    """Ours first, then nbgrader's formgrader templates, which ours extend."""
    import nbgrader
    formgrader = pathlib.Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"
    return [str(TEMPLATES), str(formgrader)]


def source_folder():
    """The local MathJax 2 (the ``static`` folder of jupyter-server-mathjax); MathJaxMissing if absent."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        raise MathJaxMissing("the local MathJax is missing: install jupyter-server-mathjax "
                             "(requirements.txt) so feedback and the formgrader show maths offline") from None
    folder = pathlib.Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    if not (folder / "MathJax.js").is_file():
        raise MathJaxMissing(f"no MathJax.js in {folder}")
    return folder


@functools.lru_cache(maxsize=2)
def _files(folder):
    """{relative path: bytes} of the MathJax files a page may load (cached: read once per process)."""
    folder = pathlib.Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not relative.startswith(SKIP):
            files[relative] = path.read_bytes()
    return files


def files():
    """{relative path: bytes} of the local MathJax, as written beside the feedback."""
    return _files(str(source_folder()))


def feedback_files():
    """{path under a feedback folder: bytes}: the local MathJax and the course's settings for it."""
    written = {os.path.join(FOLDER, relative): data for relative, data in files().items()}
    written[os.path.join(FOLDER, SETTINGS_FILE)] = SETTINGS.read_bytes()
    return written


class LocalMathJax(Preprocessor):
    """Put the local MathJax beside each feedback page (GenerateFeedback's last preprocessor).

    nbconvert's FilesWriter writes ``resources["outputs"]`` relative to the page's folder, so
    ``nbgrader generate_feedback`` (from the command line or the formgrader's button) writes
    ``mathjax/`` next to the pages, and a page opened as a file renders its maths offline.
    """

    enabled = Bool(True, help="nbconvert skips a preprocessor that is not enabled.").tag(config=True)
    server_url = Unicode("", help="The student's Jupyter server, as a path with {student} in it (on a "
                                  "JupyterHub: '/user/{student}/'): the page also loads MathJax from its "
                                  "static files, for when it is opened through the server's /files/. "
                                  "Empty: the copy beside the page only.").tag(config=True)

    def preprocess(self, nb, resources):
        try:
            local = feedback_files()
        except MathJaxMissing as error:  # the page is still written; only its maths stays raw TeX
            self.log.error("%s", error)
            return nb, resources
        resources.setdefault("outputs", {}).update(local)
        student = (resources.get("nbgrader") or {}).get("student") or ""
        server = ""
        if self.server_url and student:
            base = self.server_url.format(student=urllib.parse.quote(str(student)))
            server = f"{base.rstrip('/')}/{SERVER_PATH}?config={CONFIG}"
        # nbgrader's feedback template calls mathjax() without arguments, and an imported macro sees
        # the exporter's globals, not the resources: the page about to be written reads it from there.
        environment = getattr(self.parent, "environment", None)
        if environment is not None:
            environment.globals[SERVER_GLOBAL] = server
        return nb, resources
