"""What a student wrote or displayed, made inert before any page shows it.

The formgrader renders the autograded notebook in the instructor's browser, on the same site as
JupyterLab, and the feedback page opens in the student's: a ``<script>`` in either runs as that
person. :class:`SanitizePages` goes over a notebook before it reaches a page:

* **outputs** of every code cell: HTML and Markdown pass through the nh3 sanitizer (scripts,
  ``on*`` handlers, ``javascript:`` URLs, iframes, embeds, forms, styles and SVG go); JavaScript,
  widget views and any other active type go, keeping the plain-text fallback; an SVG image is
  shown through ``<img>`` (a browser runs nothing inside an image); only numeric ``width`` and
  ``height`` stay of an output's metadata (nbconvert writes them into the ``<img>`` tag unescaped);
* **markdown and raw cells**: rendered as the page would render them, then sanitized;
* the notebook's **widget state** (a ``<script>`` of JSON on the page) goes.

What a grader needs stays: text, tracebacks, PNG/JPEG/GIF images (the plots), tables and maths.
Content that nothing active was found in is left exactly as it was; content that changed carries a
visible note, so the grader knows the page shows less than the student's notebook did, and the
notebook records an ``active_content`` event, which the report lists.

nh3 (the Python binding of the Rust crate ammonia) is the sanitizer: it is maintained, parses
HTML as a browser does (html5ever), and keeps headings, tables and images by default. bleach, which
nbconvert's own ``sanitize_html`` uses, is deprecated upstream, and nbconvert's allowlist for it
drops headings, paragraphs and images, so the notebooks' own text would be mangled.
"""
import base64
import html
import html.parser
import re

import nh3
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbconvert.preprocessors import Preprocessor
from nbformat.notebooknode import NotebookNode
from traitlets import Bool

from coursetools.core.events import event
from coursetools.grader.preprocessors import add_events

NOTE = "The grader removed active content from this {what} ({removed}); the page shows an inert copy."
RASTER = ("image/png", "image/jpeg", "image/gif")
KEPT_TYPES = {"text/plain", "text/latex", *RASTER}   # nbconvert writes these escaped or as data URIs
# A widget needs its state and a script from a CDN to show on a static page: without them it never
# rendered, so it goes without a note (the course's own explorer and editor make these outputs).
SILENT_TYPES = {"application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"}
DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|svg\+xml|webp);base64,[A-Za-z0-9+/=\s]*", re.I)

ATTRIBUTES = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
ATTRIBUTES["*"] = {"class", "title"}
for _level in range(1, 7):
    ATTRIBUTES[f"h{_level}"] = {"id"}   # nbconvert's heading anchors


def _only_image_data(tag, attribute, value):
    """data: URLs only as an image's source, and only of image types (nh3 lets the scheme through)."""
    if value.strip().lower().startswith("data:") and not (
            tag == "img" and attribute == "src" and DATA_IMAGE.fullmatch(value.strip())):
        return None
    return value


CLEANER = nh3.Cleaner(attributes=ATTRIBUTES, url_schemes={"http", "https", "mailto", "data", "attachment"},
                      attribute_filter=_only_image_data, link_rel=None, strip_comments=True)


class _Tokens(html.parser.HTMLParser):
    """What a fragment shows and does: start tags with their attributes, and the text between them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "tbody" and not attrs:
            return   # the HTML parser nh3 uses adds it to every table: not a change
        self.tags.append((tag, tuple(sorted((name, value or "") for name, value in attrs))))

    def handle_data(self, data):
        self.text.append(data)


def _tokens(fragment):
    parser = _Tokens()
    parser.feed(fragment)
    parser.close()
    return parser.tags, " ".join("".join(parser.text).split())


def _removed(before, after):
    """A short list of what sanitizing took away: tags, attributes, text (a script's body)."""
    tags_before, text_before = before
    tags_after, text_after = after
    kept = {tag for tag, _ in tags_after}
    names = [f"<{tag}>" for tag in dict.fromkeys(tag for tag, _ in tags_before) if tag not in kept]
    attributes_after = {(tag, name) for tag, attrs in tags_after for name, _ in attrs}
    names += [f"{name}=" for name in dict.fromkeys(name for tag, attrs in tags_before for name, _ in attrs
                                                      if (tag, name) not in attributes_after or tag not in kept)
              if f"{name}=" not in names]
    if not names and text_before != text_after:
        names.append("text inside removed elements")
    return names or ["markup"]


def clean_html(fragment):
    """(inert HTML, what was removed or None): the fragment as it was where nothing needed removing."""
    cleaned = CLEANER.clean(fragment)
    before, after = _tokens(fragment), _tokens(cleaned)
    if before == after:
        return fragment, None
    return cleaned, _removed(before, after)


def clean_markdown(text):
    """(Markdown that renders inert, what was removed or None). Where something had to go, the result
    is the sanitized HTML of the rendered Markdown (maths survives as text for MathJax)."""
    rendered = markdown2html_mistune(text)
    cleaned, removed = clean_html(rendered)
    if removed is None:
        return text, None
    return cleaned, removed


def _note(what, removed):
    return NOTE.format(what=what, removed=", ".join(removed[:6]))


def _note_output(message):
    return NotebookNode(output_type="display_data", metadata={}, data={"text/plain": f"[{message}]"})


def _svg_as_image(svg):
    encoded = base64.b64encode(svg.encode("utf-8") if isinstance(svg, str) else svg).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{encoded}" alt="SVG image">'


def _clean_metadata(metadata):
    """Of an output's metadata, only numbers for an image's width and height (written into its tag)."""
    kept = {}
    for mime, value in (metadata or {}).items():
        if mime in RASTER and isinstance(value, dict):
            sizes = {k: v for k, v in value.items() if k in ("width", "height")
                     and isinstance(v, (int, float)) and not isinstance(v, bool)}
            if sizes:
                kept[mime] = sizes
    return kept


def clean_output(output):
    """Sanitize one output in place; return what was removed (a list, empty when nothing was)."""
    if output.get("output_type") not in ("display_data", "execute_result", "update_display_data"):
        return []   # streams and errors: nbconvert writes them as escaped text
    removed = []
    data = output.get("data", {})
    metadata = _clean_metadata(output.get("metadata"))
    if metadata != (output.get("metadata") or {}):
        removed.append("output metadata")
    output["metadata"] = NotebookNode(metadata)
    for mime in list(data):
        value = data[mime]
        value = "".join(value) if isinstance(value, list) else value
        if mime in KEPT_TYPES:
            continue
        if mime in SILENT_TYPES:
            del data[mime]
            continue
        if mime == "text/html" and isinstance(value, str):
            data[mime], found = clean_html(value)
        elif mime == "text/markdown" and isinstance(value, str):
            data[mime], found = clean_markdown(value)
        elif mime == "image/svg+xml" and isinstance(value, str):
            del data[mime]
            if not any(kind in data for kind in RASTER):
                data.setdefault("text/html", _svg_as_image(value))
            found = None
        else:
            del data[mime]
            found = [mime]
        removed += found or []
    if removed and not any(mime in data for mime in ("text/plain", "text/html", *RASTER)):
        data["text/plain"] = "(an output the grader removed)"
    return removed


def clean_cell(cell):
    """Sanitize one cell in place; return what was removed from it (a list, empty when nothing was)."""
    removed = []
    if cell.cell_type == "markdown":
        cell.source, found = clean_markdown(cell.source)
        if found:
            cell.source += f"\n<p><em>[{html.escape(_note('text', found))}]</em></p>\n"   # names are text
            removed += found
    elif cell.cell_type == "raw":
        cleaned, found = clean_html(cell.source)
        if found:
            cell.source = cleaned
            removed += found
    elif cell.cell_type == "code":
        notes = []
        for output in cell.get("outputs", []):
            found = clean_output(output)
            if found:
                notes.append(found)
                removed += found
        if notes:
            cell.outputs.append(_note_output(_note("output", list(dict.fromkeys(removed)))))
    return list(dict.fromkeys(removed))


def clean_notebook(nb):
    """Sanitize a whole notebook in place; return [(cell label, [what was removed])]."""
    found = []
    nb.metadata.pop("widgets", None)   # widget state: a <script> of JSON on the page (see SILENT_TYPES)
    for index, cell in enumerate(nb.cells):
        removed = clean_cell(cell)
        if removed:
            label = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"
            found.append((label, removed))
    return found


class SanitizePages(Preprocessor):
    """Make what a student wrote or displayed inert: autograding (the formgrader's notebook), feedback,
    and the formgrader's own rendering all run it, so an older autograded notebook is covered too."""

    enabled = Bool(True, help="nbconvert skips a preprocessor that is not enabled.").tag(config=True)

    def preprocess(self, nb, resources):
        found = clean_notebook(nb)
        if found and isinstance(resources, dict) and "nbgrader" in resources:   # not in the formgrader's view
            what = "; ".join(f"{label}: {', '.join(removed)}" for label, removed in found)
            add_events(nb, [event("active_content", what[:500])])
        return nb, resources
