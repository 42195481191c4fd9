"""Helpers for tests/test_browser.py: JupyterLab in a subprocess, Chromium through Playwright.

JupyterLab runs from this environment (``sys.executable -m jupyter lab``) on 127.0.0.1,
on a free port, with a random token and throw-away Jupyter config/data/runtime folders,
so the test neither reads nor writes the user's ``~/.jupyter`` (settings, workspaces,
kernels). Chromium is the system one (Debian's ``chromium`` package): Playwright's own
browser download is not used.
"""
import contextlib
import json
import os
import pathlib
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import nbformat

from coursetools.core.cells import grade_id

REPO = pathlib.Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "browser"

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Debian's Chromium in a closed network: without the background-networking flags its
# connections (component updates, sync, QUIC probes) are refused and it can stall.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

# Seconds. Generous, because CI machines are slow and shared, but bounded.
SERVER_START_TIMEOUT = 90
UI_TIMEOUT = 60          # JupyterLab shell, a notebook opening, a dialog appearing
KERNEL_TIMEOUT = 120     # a kernel starting and running every cell of a notebook
VALIDATE_TIMEOUT = 180   # nbgrader's Validate: a fresh kernel runs the whole notebook


def find_chromium():
    """Path of a system Chromium, or None. ``$CHROMIUM`` wins when set."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if os.path.exists(explicit) else shutil.which(explicit)
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- JupyterLab

LAB_SETTINGS = {
    # No toast asking about Jupyter news, no update check (there is no network anyway).
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    # Every cell in the DOM, in order, so cells can be found by their index in the file.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


class PortTaken(RuntimeError):
    """The free port found for JupyterLab was taken before it could bind it."""


class JupyterLab:
    """A JupyterLab server in a subprocess; ``stop()`` always ends it and its kernels."""

    def __init__(self, root_dir, home, *, cwd=None):
        self.root_dir = pathlib.Path(root_dir)
        self.home = pathlib.Path(home)
        self.cwd = pathlib.Path(cwd or root_dir)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / "jupyterlab.log"
        self.process = None
        self._log = None

    def _environment(self):
        config_dir = self.home / "config"
        for relative, settings in LAB_SETTINGS.items():
            path = config_dir / "lab" / "user-settings" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(settings))
        # nbgrader's student extensions look for an exchange folder: give them an empty one
        # instead of /usr/local/share/nbgrader/exchange.
        exchange = self.home / "exchange"
        exchange.mkdir(parents=True, exist_ok=True)
        (config_dir / "nbgrader_config.py").write_text(f"c.Exchange.root = {str(exchange)!r}\n")
        for name in ("data", "runtime", "ipython"):
            (self.home / name).mkdir(parents=True, exist_ok=True)
        bin_dir = os.path.dirname(sys.executable)
        env = dict(os.environ)
        env.update({
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "JUPYTER_DATA_DIR": str(self.home / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
            "IPYTHONDIR": str(self.home / "ipython"),
            # Kernels and nbgrader's helpers are found on PATH: this environment first.
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        env.pop("JUPYTER_TOKEN", None)
        return env

    def start(self, attempts=3):
        """Start the server and wait until it answers; a port taken meanwhile is retried."""
        for attempt in range(attempts):
            try:
                return self._start_once()
            except PortTaken:
                if attempt == attempts - 1:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"

    def _start_once(self):
        command = [
            sys.executable, "-m", "jupyter", "lab",
            "--no-browser", "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.password=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.shutdown_no_activity_timeout=1200",  # a leaked server ends by itself
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # CI containers run as root
        env = self._environment()
        if self._log:
            self._log.close()
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=self.cwd, env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log_tail()
                if "already in use" in log:
                    raise PortTaken(log)
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{log}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_TIMEOUT}s:\n{self.log_tail()}")

    def api(self, path, method="GET"):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            body = reply.read()
        return json.loads(body) if body else None

    def lab_url(self, path=""):
        return f"{self.url}/lab/tree/{path}?token={self.token}" if path else f"{self.url}/lab?token={self.token}"

    def log_tail(self, chars=4000):
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self):
        """Shut the server down (kernels included); kill its process group if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(Exception):
                self.api("/api/shutdown", method="POST")
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        # Kernels end with the server: /api/shutdown stops them, and ipykernel exits by
        # itself when its parent process is gone.
        if self._log:
            self._log.close()


# --------------------------------------------------------------------------- notebooks on disk

def read_notebook(path):
    return nbformat.read(str(path), as_version=4)


def cell_index(notebook, *, grade_id_is=None, grade_id_pattern=None, contains=None, start=0):
    """Index of the first cell (from ``start``) matching the criteria, or None."""
    for index, cell in enumerate(notebook.cells):
        if index < start:
            continue
        gid = grade_id(cell) or ""
        if grade_id_is is not None and gid != grade_id_is:
            continue
        if grade_id_pattern is not None and not re.search(grade_id_pattern, gid):
            continue
        if contains is not None and contains not in cell.source:
            continue
        return index
    return None


def find_notebook(folder, prefix):
    """The notebook in ``folder`` whose name starts with ``prefix`` (e.g. "07_"), or None."""
    matches = sorted(pathlib.Path(folder).glob(f"{prefix}*.ipynb"))
    return matches[0] if matches else None


# --------------------------------------------------------------------------- the page

class Screenshots:
    """Numbered screenshots of each step, kept in artifacts/browser/ (or $BROWSER_ARTIFACTS)."""

    def __init__(self, folder):
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def __call__(self, page, name, **kwargs):
        self.count += 1
        path = self.folder / f"{self.count:02d}_{name}.png"
        with contextlib.suppress(Exception):  # a screenshot never fails a test by itself
            page.screenshot(path=str(path), **kwargs)
        return path


def menu(page, top, item):
    """Click a main-menu entry, e.g. menu(page, "Run", "Run All Cells")."""
    page.locator("#jp-MainMenu .lm-MenuBar-item").filter(
        has_text=re.compile(rf"^\s*{re.escape(top)}\s*$")).click()
    entry = page.locator(".lm-Menu:visible .lm-Menu-item").filter(
        has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^\s*{re.escape(item)}\s*$")))
    entry.first.click()


def hide_left_sidebar(page):
    """Collapse JupyterLab's left sidebar (click its open tab), for wider content."""
    tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if tab.count():
        tab.first.click()


class NotebookPage:
    """One notebook open in JupyterLab, driven the way a person would: menus, keys, buttons."""

    def __init__(self, page, lab, path, workspace):
        self.page = page
        self.lab = lab
        self.path = str(path)
        self.workspace = workspace
        self.panel = page.locator(".jp-NotebookPanel").first

    # -- opening
    def open(self, expected_cells=None):
        """Open the notebook; with ``expected_cells``, wait until that many cells are on the page.

        Cells are then addressed by their index in the .ipynb file (windowing is off, see
        LAB_SETTINGS), which is how tests find a cell by its nbgrader grade id.
        """
        # A workspace of its own: no notebook left open by an earlier test comes back.
        url = f"{self.lab.url}/lab/workspaces/{self.workspace}/tree/{self.path}?token={self.lab.token}"
        self.page.goto(url, timeout=UI_TIMEOUT * 1000)
        self.panel.wait_for(state="visible", timeout=UI_TIMEOUT * 1000)
        self.panel.locator(".jp-Cell").first.wait_for(state="visible", timeout=UI_TIMEOUT * 1000)
        if expected_cells is not None:
            self.page.wait_for_function(
                "n => document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell').length === n",
                arg=expected_cells, timeout=UI_TIMEOUT * 1000)
        self.wait_kernel_idle()
        return self

    def cell(self, index):
        return self.panel.locator(".jp-Cell").nth(index)

    def kernel_status(self):
        return self.page.evaluate("""() => {
            const node = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
            return node ? node.getAttribute('data-status') : null;
        }""")

    def wait_kernel_idle(self, timeout=KERNEL_TIMEOUT):
        self.page.wait_for_function("""() => {
            const node = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
            return node && node.getAttribute('data-status') === 'idle';
        }""", timeout=timeout * 1000)

    # -- editing
    def set_cell_source(self, index, text, markdown=False):
        """Replace a cell's text: select it, Enter to edit, select all, type (as a paste).

        A markdown cell is rendered again afterwards (Ctrl+Enter), as a student would.
        """
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").first.click()     # select the cell (command mode)
        self.page.keyboard.press("Enter")                  # edit mode, markdown included
        editor = cell.locator(".jp-Cell-inputArea .cm-content")
        editor.wait_for(state="visible", timeout=UI_TIMEOUT * 1000)
        editor.click()
        self.page.keyboard.press("ControlOrMeta+a")
        # insert_text types the whole text at once, like a paste: no auto-indent or
        # auto-closed brackets from the editor get in the way.
        self.page.keyboard.insert_text(text)
        self.page.keyboard.press("Control+Enter" if markdown else "Escape")

    # -- widgets (ipywidgets 8)
    def slider(self, index, label):
        """The slider widget whose description is ``label`` in cell ``index``'s output."""
        slider = self.cell(index).locator(".widget-slider, .jupyter-widget-slider, .widget-hslider").filter(
            has=self.page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(label)}\b")))
        slider.first.wait_for(state="visible", timeout=UI_TIMEOUT * 1000)
        return slider.first

    @staticmethod
    def slider_value(slider):
        return slider.locator(".widget-readout").inner_text().strip()

    def move_slider(self, slider, steps=1, timeout=UI_TIMEOUT):
        """Drag a slider's handle ``steps`` values along with the mouse, as a person would.

        The target point comes from the handle's aria-valuemin/max/now and the track's box.
        Returns (old value, new value) as the readout shows them, once the readout has moved.
        (Keyboard arrows on the handle also work, but JupyterLab can take the focus back to
        the notebook when the click lands in a cell output, so the mouse is the steadier way.)
        """
        handle = slider.locator(".noUi-handle").first
        track = slider.locator(".noUi-base").first
        old = self.slider_value(slider)
        for attempt in range(3):
            handle.scroll_into_view_if_needed()
            low, high, now = (float(handle.get_attribute(name))
                              for name in ("aria-valuemin", "aria-valuemax", "aria-valuenow"))
            target = min(max(now + steps, low), high)
            box, bar = handle.bounding_box(), track.bounding_box()
            x0, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            x1 = bar["x"] + (bar["width"] * (target - low) / (high - low) if high > low else 0)
            self.page.mouse.move(x0, y)
            self.page.mouse.down()
            self.page.mouse.move(x1, y, steps=8)
            self.page.mouse.up()
            try:
                self.page.wait_for_function(
                    "([el, old]) => el.querySelector('.widget-readout').textContent.trim() !== old",
                    arg=[slider.element_handle(), old], timeout=(timeout if attempt == 2 else 10) * 1000)
                break
            except Exception:
                if attempt == 2:
                    raise
        return old, self.slider_value(slider)

    def save(self):
        self.page.keyboard.press("ControlOrMeta+s")
        self.page.wait_for_function("""() => {
            const tab = document.querySelector('.lm-TabBar-tab.jp-mod-current');
            return tab && !tab.classList.contains('jp-mod-dirty');
        }""", timeout=UI_TIMEOUT * 1000)

    # -- running
    def menu(self, top, item):
        menu(self.page, top, item)

    def max_execution_count(self):
        return self.page.evaluate("""() => {
            let best = 0;
            for (const p of document.querySelectorAll('.jp-NotebookPanel .jp-InputPrompt')) {
                const m = p.textContent.match(/\\[(\\d+)\\]/);
                if (m) best = Math.max(best, Number(m[1]));
            }
            return best;
        }""")

    def run_all(self, timeout=KERNEL_TIMEOUT):
        """Run > Run All Cells, then wait until nothing is queued or running any more.

        JupyterLab stops a run-all at the first cell that raises; the cells after it stay
        unexecuted. Callers check what ran, from the saved notebook.
        """
        before = self.max_execution_count()
        self.menu("Run", "Run All Cells")
        done = """(before) => {
            const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-InputPrompt')];
            if (prompts.some(p => p.textContent.includes('*'))) return false;
            let best = 0;
            for (const p of prompts) {
                const m = p.textContent.match(/\\[(\\d+)\\]/);
                if (m) best = Math.max(best, Number(m[1]));
            }
            const node = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
            return best > before && (!node || node.getAttribute('data-status') === 'idle');
        }"""
        deadline = time.monotonic() + timeout
        while True:
            # Finished, and still finished a moment later: no cell was between two states.
            self.page.wait_for_function(done, arg=before, timeout=max(1, deadline - time.monotonic()) * 1000)
            self.page.wait_for_timeout(500)
            if self.page.evaluate(done, before):
                return

    def output_text(self, index):
        return self.cell(index).locator(".jp-OutputArea").inner_text()

    def output_lines(self, index):
        """The non-blank lines of a cell's outputs as the page shows them, prompts left out."""
        texts = self.cell(index).locator(".jp-OutputArea-output").all_inner_texts()
        return [line for text in texts for line in text.splitlines() if line.strip()]

    def shown_results(self, index):
        """How many ``Out[n]`` results (execute_result outputs) a cell shows."""
        return self.cell(index).locator(".jp-OutputArea-executeResult").count()

    # -- nbgrader
    def validate(self, timeout=VALIDATE_TIMEOUT):
        """Click nbgrader's Validate button; return the result dialog's message element."""
        button = self.panel.locator(".validate-button")
        button.wait_for(state="visible", timeout=UI_TIMEOUT * 1000)
        button.click()
        dialog = self.page.locator(".jp-Dialog").filter(has_text="Validation")
        dialog.wait_for(state="visible", timeout=timeout * 1000)
        return dialog

    def close_dialog(self):
        dialog = self.page.locator(".jp-Dialog")
        dialog.locator("button.jp-mod-accept, .jp-Dialog-button.jp-mod-accept").first.click()
        dialog.wait_for(state="hidden", timeout=UI_TIMEOUT * 1000)


def text_on_screen(locator, needle):
    """Where ``needle`` (a piece of ``locator``'s text) is drawn, and whether it can be read now.

    Returns "" when it is on screen: inside the window and inside every ancestor that clips
    (a scrolled output area, the dialog's body), so nobody has to scroll to read it; otherwise
    a short reason. The text is found by a DOM Range, so a long <pre> counts line by line.
    """
    return locator.evaluate("""(el, needle) => {
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const at = node.data.indexOf(needle);
            if (at < 0) continue;
            const range = document.createRange();
            range.setStart(node, at);
            range.setEnd(node, at + needle.length);
            const r = range.getBoundingClientRect();
            const where = `top ${Math.round(r.top)}, bottom ${Math.round(r.bottom)}`;
            if (!r.width || !r.height) return `not drawn (${where})`;
            if (r.top < 0 || r.bottom > window.innerHeight || r.left < 0 || r.right > window.innerWidth)
                return `outside the window (${where}; window height ${window.innerHeight})`;
            for (let a = node.parentElement; a && a !== document.body; a = a.parentElement) {
                const style = getComputedStyle(a);
                if (!/(auto|scroll|hidden|clip)/.test(style.overflowY + " " + style.overflowX)) continue;
                const b = a.getBoundingClientRect();
                if (r.top < b.top - 1 || r.bottom > b.bottom + 1 || r.left < b.left - 1 || r.right > b.right + 1)
                    return `scrolled out of view in <${a.tagName.toLowerCase()} class="${a.className}"> `
                        + `(${where}; that box: top ${Math.round(b.top)}, bottom ${Math.round(b.bottom)})`;
            }
            return "";
        }
        return `no text node holds ${JSON.stringify(needle)}`;
    }""", needle)


def save_readme_screenshot(page, path, max_bytes=300_000):
    """The README's picture: the page as it is, palette-reduced to stay small."""
    from PIL import Image

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".raw.png")
    page.screenshot(path=str(raw))
    image = Image.open(raw).convert("RGB")
    for colors in (256, 128, 64):
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, optimize=True)
        if path.stat().st_size <= max_bytes:
            break
    raw.unlink()
    return path


class PageWatch:
    """Everything a student's script would leave on a page: dialogs, requests, its window flags, the title."""

    def __init__(self, page):
        self.page, self.dialogs, self.requests = page, [], []
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("request", lambda request: self.requests.append((request.method, request.url)))

    def settle(self, seconds=3):
        """Time for onload, onerror and timers of anything that did get through to fire."""
        self.page.wait_for_load_state("load")
        self.page.wait_for_timeout(seconds * 1000)

    def assert_inert(self, title):
        flags = self.page.evaluate("Object.keys(window).filter(name => name.startsWith('pwned'))")
        assert flags == [], f"the student's scripts ran: {flags}"
        assert self.page.title() == title and "PWNED" not in title, f"the title changed to {self.page.title()!r}"
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"
        api = [(method, url) for method, url in self.requests if "/api/contents" in url]
        assert api == [], f"requests to the server's API: {api}"
        writes = [(method, url) for method, url in self.requests if method not in ("GET", "HEAD")]
        assert writes == [], f"requests that change something: {writes}"
