"""A student's outputs and text are inert on every page (issue 24): coursetools.grader.pages.

In-process and fast: a table of hostile outputs and Markdown, each sanitized and then rendered by
nbconvert with the course's own configuration, as the feedback and as the formgrader's page; the
rendered HTML is parsed and must hold no script of the student's, no event handler, no
``javascript:`` URL and no frame, object or inline SVG. What a grader needs (text, PNG plots,
tables, maths) must come through unchanged, and so must every Markdown cell of the notebooks.
Chromium opens the real pages in tests/test_browser.py.
"""
import base64
import copy
import html.parser
import json
import pathlib

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from conftest import REPO
from coursetools.grader import pages

SCRIPT = "window.pwned = true"
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
SVG = (f'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4" onload="{SCRIPT}">'
       f'<script>{SCRIPT}</script><rect width="4" height="4"/></svg>')

# What a student can display, and what must be left of it: {name: (output, text the page still shows)}.
HOSTILE_OUTPUTS = {
    "html script": ({"text/html": f"<p>kept text</p><script>{SCRIPT}</script>"}, "kept text"),
    "html onerror": ({"text/html": f'<img src="x" onerror="{SCRIPT}"><b>bold kept</b>'}, "bold kept"),
    "html javascript link": ({"text/html": f'<a href="javascript:{SCRIPT}">link kept</a>'}, "link kept"),
    "html iframe": ({"text/html": '<iframe src="/api/contents/"></iframe><i>after the frame</i>'}, "after the frame"),
    "html srcdoc": ({"text/html": f'<iframe srcdoc="<script>{SCRIPT}</script>"></iframe>x'}, "x"),
    "html object and embed": ({"text/html": f'<object data="javascript:{SCRIPT}"></object>'
                                            f'<embed src="javascript:{SCRIPT}">y'}, "y"),
    "html svg": ({"text/html": SVG + "<p>svg gone</p>"}, "svg gone"),
    "html math mxss": ({"text/html": f'<math><mtext><table><mglyph><style><img src=x onerror="{SCRIPT}">'
                                     f'</style></mglyph></table></mtext></math>z'}, None),
    "html form": ({"text/html": f'<form action="/api/contents"><button formaction="javascript:{SCRIPT}">'
                                f'go</button></form>'}, None),
    "html meta and base": ({"text/html": '<meta http-equiv="refresh" content="0;url=/api/contents/">'
                                         '<base href="/api/">kept'}, "kept"),
    "html style": ({"text/html": '<style>@import url("/api/contents/");</style>styled'}, "styled"),
    "html details ontoggle": ({"text/html": f'<details open ontoggle="{SCRIPT}"><summary>s</summary>d</details>'},
                              "d"),
    "javascript output": ({"application/javascript": SCRIPT, "text/plain": "<Javascript object>"},
                          "<Javascript object>"),
    "markdown output": ({"text/markdown": f'**md kept** <img src="x" onerror="{SCRIPT}"> '
                                          f'[click](javascript:alert(1))'}, "md kept"),
    "svg output": ({"image/svg+xml": SVG}, None),
    "widget view": ({"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2,
                                                                  "version_minor": 0},
                     "text/plain": "HTML(value='widget text')"}, "widget text"),
    "widget state output": ({"application/vnd.jupyter.widget-state+json": {"state": {}},
                             "text/plain": "state"}, "state"),
    "unknown type": ({"application/x-evil": "<script>x</script>"}, None),
}

HOSTILE_MARKDOWN = {
    "script": f"My answer.\n\n<script>{SCRIPT}</script>",
    "onerror": f'Answer <img src="x" onerror="{SCRIPT}">',
    "javascript link": "[click me](javascript:alert(1))",
    "svg": SVG,
    "iframe": '<iframe src="/api/contents/"></iframe>',
    "mxss": (f'<math><mtext><table><mglyph><style><img src=x onerror="{SCRIPT}"></style></mglyph></table>'
             f'</mtext></math>'),
}

FINE_MARKDOWN = [
    "Flattening loses **which pixels are neighbours**; $O = \\lfloor (n + 2p - k)/s \\rfloor + 1$ and $a < b$.",
    "| k | p |\n|---|---|\n| 3 | 1 |\n\n- a list\n- `code < 3`\n\n```python\nprint('<b>')\n```",
    "<details><summary>Hint</summary>Try the floor.</details>",
    "![plot](data:image/png;base64," + PIXEL + ")",
]


class ActiveParts(html.parser.HTMLParser):
    """The active parts of a rendered page that came from the student: scripts and handlers running the
    student's code, script URLs, frames, objects, inline SVG and MathML, forms, base and refresh tags."""

    FRAMES = {"iframe", "frame", "object", "embed", "svg", "math", "form", "base", "meta", "applet"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found, self._script = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self._script = attrs
        if tag in self.FRAMES and not (tag == "meta" and attrs.get("http-equiv") in (None, "Content-Security-Policy")
                                       or tag == "meta" and "charset" in attrs):
            self.found.append(f"<{tag}>")
        for name, value in attrs.items():
            if name.startswith("on") and (SCRIPT in (value or "") or "alert(" in (value or "")):
                self.found.append(f"{name}= on <{tag}>")   # the formgrader's own buttons have handlers
            if value and value.strip().lower().startswith(("javascript:", "vbscript:", "data:text")):
                self.found.append(f"{name}={value[:20]} on <{tag}>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None and SCRIPT in data:
            self.found.append("a student's script")


def active_parts(page):
    parser = ActiveParts()
    parser.feed(page)
    return parser.found


def hostile_notebook():
    cells = [new_markdown_cell("# A notebook\n\nWith maths $x^2$.")]
    for name, (data, _) in HOSTILE_OUTPUTS.items():
        cells.append(new_code_cell(f"# {name}", outputs=[new_output("display_data", data=copy.deepcopy(data))]))
    cells += [new_markdown_cell(text) for text in HOSTILE_MARKDOWN.values()]
    cells.append(new_code_cell("x", outputs=[new_output("display_data", data={"image/png": PIXEL},
                                                        metadata={"image/png": {"width": f'1 onerror="{SCRIPT}"'}})]))
    nb = new_notebook(cells=cells)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": {
        "state": {"value": f'<img src=x onerror="{SCRIPT}">'}}}}}
    return nb


def render(nb, template):
    """The page nbconvert writes for a notebook with the course's configuration (feedback or formgrade)."""
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader
    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    extra = Config()
    extra.HTMLExporter.template_name = template
    if template == "feedback":   # as nbgrader's GenerateFeedback sets it: the page inlines bootstrap's CSS
        import nbgrader
        extra.HTMLExporter.extra_template_paths = [str(pathlib.Path(nbgrader.__file__).parent / "server_extensions"
                                                       / "formgrader" / "static" / "node_modules" / "bootstrap"
                                                       / "dist" / "css")]
    config.merge(extra)
    resources = {"base_url": "/user/x", "submission_id": "s1", "notebook_id": "n", "assignment_id": "a",
                 "index": 0, "total": 1, "text": "", "last_name": "", "first_name": "",
                 "nbgrader": {"notebook": "n", "score": 0, "max_score": 0, "late_penalty": 0}}
    page, _ = HTMLExporter(config=config).from_notebook_node(nb, resources=resources)
    return page


@pytest.mark.parametrize("name", sorted(HOSTILE_OUTPUTS))
def test_each_kind_of_active_output_is_made_inert_and_its_text_kept(name):
    data, kept = HOSTILE_OUTPUTS[name]
    output = new_output("display_data", data=copy.deepcopy(data))
    removed = pages.clean_output(output)
    fragment = json.dumps(output.data)
    assert SCRIPT not in fragment or name in ("widget view",), f"{name}: {output.data}"
    for mime in output.data:
        assert mime in pages.KEPT_TYPES or mime in ("text/html", "text/markdown"), (name, mime)
    if kept is not None:
        assert kept in fragment, f"{name}: the harmless part is gone: {output.data}"
    silent = name.startswith("widget") or name == "svg output"
    assert bool(removed) != silent, (name, removed)


@pytest.mark.parametrize("name", sorted(HOSTILE_MARKDOWN))
def test_hostile_markdown_is_made_inert_and_marked(name):
    cell = new_markdown_cell(HOSTILE_MARKDOWN[name])
    removed = pages.clean_cell(cell)
    assert removed, name
    assert "The grader removed active content" in cell.source
    assert not active_parts(pages.markdown2html_mistune(cell.source)), cell.source


def test_an_svg_is_shown_as_an_image_that_runs_nothing():
    output = new_output("display_data", data={"image/svg+xml": SVG})
    pages.clean_output(output)
    image = output.data["text/html"]
    assert image.startswith('<img src="data:image/svg+xml;base64,')
    assert base64.b64decode(image.split(",", 1)[1].split('"')[0]).decode() == SVG  # the picture is the student's


@pytest.mark.parametrize("text", FINE_MARKDOWN)
def test_harmless_markdown_is_left_exactly_as_written(text):
    cell = new_markdown_cell(text)
    assert pages.clean_cell(cell) == [] and cell.source == text


def test_every_markdown_cell_of_the_notebooks_is_left_as_written():
    changed = []
    for path in sorted((REPO / "source" / "session10").glob("*.ipynb")):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "markdown" and pages.clean_markdown(cell.source)[1] is not None:
                changed.append(f"{path.name} cell {index + 1}")
    assert not changed, f"the sanitizer would change the course's own text: {changed}"


def test_plots_text_and_errors_pass_untouched():
    outputs = [new_output("display_data", data={"image/png": PIXEL, "text/plain": "<Figure>"},
                          metadata={"image/png": {"width": 300}}),
               new_output("stream", name="stdout", text="<script>printed</script>\n"),
               new_output("error", ename="CheckFailure", evalue="expected 3, got 4", traceback=["x"])]
    before = copy.deepcopy(outputs)
    assert [pages.clean_output(o) for o in outputs] == [[], [], []]
    assert outputs == before


def test_sanitizing_twice_changes_nothing_more():
    nb = hostile_notebook()
    assert pages.clean_notebook(nb)
    once = copy.deepcopy(nb)
    assert pages.clean_notebook(nb) == []
    assert nb == once


@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_rendered_pages_hold_nothing_active_of_the_students(template):
    """The course config sanitizes as it renders (HTMLExporter.preprocessors), so even a notebook that
    was autograded before the sanitizer existed renders inert in the formgrader and the feedback."""
    page = render(hostile_notebook(), template)
    assert not active_parts(page), active_parts(page)
    assert "The grader removed active content" in page
    assert f"data:image/png;base64,{PIXEL}" in page   # plots stay
    assert "x^2" in page                                # maths stays for MathJax


def test_the_feedback_page_carries_its_content_security_policy_before_any_script():
    page = render(new_notebook(cells=[new_markdown_cell("$x$")]), "feedback")
    head = page.split("</head>")[0]
    policy = head.index('http-equiv="Content-Security-Policy"')
    assert policy < head.index("<script")
    rule = head[head.rindex("<meta", 0, policy):].split(">")[0]
    assert "default-src 'none'" in rule and "script-src 'self'" in rule and "unsafe-inline'; img" in rule
    assert "script-src 'self';" in rule and "'unsafe-eval'" not in rule
    scripts = [line for line in head.splitlines() if "<script" in line]
    assert all(" src=" in line for line in scripts), f"inline scripts would be refused by the policy: {scripts}"


def test_the_sanitizer_records_an_event_only_while_grading():
    nb = hostile_notebook()
    pages.SanitizePages().preprocess(nb, {"nbgrader": {"notebook": "n"}})
    events = nb.metadata["coursetools"]["events"]
    assert [e["kind"] for e in events] == ["active_content"] and "<script>" in events[0]["detail"]
    view = hostile_notebook()
    pages.SanitizePages().preprocess(view, {})   # the formgrader's rendering writes nothing down
    assert "coursetools" not in view.metadata


def test_every_feedback_page_of_the_corpus_is_inert_and_keeps_its_figures(graded_course):
    """Every spec's feedback (hostile ones included): nothing active of the student's, and as many
    PNG figures as its autograded notebook has."""
    course = graded_course.course
    problems, pages_seen = [], 0
    for page in sorted(course.feedback.glob("*/*/*.html")):
        student, notebook = page.parent.parent.name, page.stem
        text = page.read_text(errors="replace")
        pages_seen += 1
        found = active_parts(text)
        if found:
            problems.append(f"{student}/{notebook}: {found[:3]}")
        nb = graded_course.autograded_notebook(student, notebook) or {}
        figures = sum("image/png" in output.get("data", {}) for cell in nb.get("cells", [])
                      for output in cell.get("outputs", []))
        if text.count('src="data:image/png;base64,') < figures:
            problems.append(f"{student}/{notebook}: {figures} figures autograded, fewer in the feedback")
    assert pages_seen > 100, f"only {pages_seen} feedback pages"
    assert not problems, problems
