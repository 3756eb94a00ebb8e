from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from portal.assistant.highlight_css import build_highlight_css
from portal.assistant.rendering import TOKEN_CLASSES, render_markdown, render_markdown_partial
from tests.assistant.factories import MessageFactory

ROOT = Path(__file__).resolve().parents[2]
HIGHLIGHT_CSS = ROOT / "static" / "css" / "highlight.css"
PORTAL_CSS = ROOT / "static" / "css" / "portal.css"
PYTHON_FENCE = '```python\nimport os\n\ndef refund(days: int) -> str:\n    return "paid"  # within 14 days\n```'


class _Elements(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def classes(self, tag: str) -> set[str]:
        return {name for found, attrs in self.found if found == tag for name in (attrs.get("class") or "").split()}


def test_a_python_fence_is_coloured_with_pygments_token_classes():
    html = render_markdown("Like this:\n\n" + PYTHON_FENCE)
    elements = _Elements(html)

    assert '<div class="highlight"><pre>' in html
    span_classes = elements.classes("span")
    assert {"kn", "nn", "k", "nf", "s2", "c1"} <= span_classes  # import, os, def, refund, "paid", the comment
    assert span_classes <= TOKEN_CLASSES
    assert '<span class="kn">import</span>' in html and '<span class="c1"># within 14 days</span>' in html


@pytest.mark.parametrize("fence", ["```\nplain <b>words</b> & more\n```", "```no-such-language\nplain\n```"])
def test_a_fence_without_a_known_language_stays_plain_pre_and_code(fence: str):
    html = render_markdown(fence)

    assert html.startswith("<pre><code>") and "<span" not in html and "highlight" not in html
    assert "&lt;b&gt;" in html or "plain" in html


@pytest.mark.parametrize(
    "hostile",
    [
        '```python\n<span class="k" style="color:red" onclick="alert(1)">x</span>\n```',
        '<div class="highlight" style="position:fixed;inset:0" onclick="alert(1)"><pre><code>'
        '<span class="k alert button" style="color:red" onmouseover="steal()">x</span></code></pre></div>',
        '<pre class="highlight" style="x"><code class="language-python" onclick="alert(1)">x</code></pre>',
        '```{.python style="color:red" onclick="alert(1)"}\nx = 1\n```',
    ],
)
def test_style_handlers_and_foreign_classes_never_survive_in_code(hostile: str):
    elements = _Elements(render_markdown(hostile + "\n\nplain words stay"))

    for _tag, attributes in elements.found:
        assert not [name for name in attributes if name == "style" or name.startswith("on")]
    assert elements.classes("span") <= TOKEN_CLASSES
    assert elements.classes("div") <= {"highlight"}
    assert not elements.classes("pre") and not elements.classes("code")


def test_a_finished_fence_streams_exactly_as_it_is_stored():
    text = "Try:\n\n" + PYTHON_FENCE + "\n\nThen **done**."

    assert render_markdown_partial(text) == render_markdown(text)


def test_an_unfinished_fence_streams_as_closed_highlighted_code():
    streaming = 'Try:\n\n```python\ndef refund(days):\n    return "<script>alert(1)</script>'

    html = render_markdown_partial(streaming)

    assert html.startswith("<p>Try:</p>") and html.rstrip().endswith("</code></pre></div>")
    assert '<span class="k">def</span>' in html
    assert "<script" not in html and "&lt;script&gt;" in html


def test_the_committed_stylesheet_is_what_the_generator_writes():
    # regenerate with: .venv/bin/python -m portal.assistant.highlight_css > static/css/highlight.css
    assert HIGHLIGHT_CSS.read_text() == build_highlight_css()


# ---- contrast of every token colour on the portal's code background, in each theme --------------------------
def _luminance(colour: str) -> float:
    hex_digits = colour.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(digit * 2 for digit in hex_digits)
    channels = [int(hex_digits[index : index + 2], 16) / 255 for index in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(first: str, second: str) -> float:
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _code_backgrounds() -> dict[str, str]:
    portal = PORTAL_CSS.read_text()
    light = re.search(r":root \{[^}]*--code-bg: (#[0-9a-f]+)", portal)
    dark = re.search(r':root\[data-theme="dark"\] \{[^}]*--code-bg: (#[0-9a-f]+)', portal)
    assert light and dark
    return {"light": light.group(1), "dark": dark.group(1)}


def _rules(css: str) -> list[tuple[str, str | None, str | None]]:
    """(selector, colour, background) of each rule."""
    found = []
    for selector, body in re.findall(r"([^{}\n]+?)\s*\{([^{}]*)\}", css):
        colour = re.search(r"(?<![-\w])color: (#[0-9A-Fa-f]+)", body)
        background = re.search(r"background-color: (#[0-9A-Fa-f]+)", body)
        found.append((selector.strip(), colour and colour.group(1), background and background.group(1)))
    return found


def test_the_dark_colours_apply_exactly_where_the_portal_turns_dark():
    css, portal = HIGHLIGHT_CSS.read_text(), PORTAL_CSS.read_text()
    media = '@media (prefers-color-scheme: dark) {\n  :root:not([data-theme="light"]) {'

    assert media in portal and ':root[data-theme="dark"] {' in portal
    assert '@media (prefers-color-scheme: dark) {\n:root:not([data-theme="light"]) .highlight span {' in css
    assert '\n:root[data-theme="dark"] .highlight span {' in css
    scopes = {selector.rsplit(".highlight", 1)[0].strip() for selector, _, _ in _rules(css)}
    assert scopes == {"", ':root:not([data-theme="light"])', ':root[data-theme="dark"]'}


def test_every_token_colour_reaches_wcag_aa_on_the_code_background_of_its_theme():
    backgrounds = _code_backgrounds()
    marked_lines = {}
    weak = []
    for selector, colour, background in _rules(HIGHLIGHT_CSS.read_text()):
        theme = "light" if selector.startswith(".highlight") else "dark"
        if selector.endswith(" .hll"):
            marked_lines[theme] = background
            continue
        if colour is None:
            continue
        if selector.endswith(" .w"):  # whitespace: no glyph to read
            continue
        for behind in {background or backgrounds[theme], background or marked_lines[theme]}:
            assert behind is not None, selector
            if _contrast(colour, behind) < 4.5:
                weak.append(f"{selector} {colour} on {behind}: {_contrast(colour, behind):.2f}")
    assert set(marked_lines) == {"light", "dark"}
    assert weak == []


# ---- the chat page ------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_chat_page_shows_coloured_code_and_links_its_stylesheet_which_other_pages_do_not(
    client: Any, sam: Any, conversation: Any
):
    question = MessageFactory.create(conversation=conversation, content="How do I import os?")
    MessageFactory.create(conversation=conversation, role="assistant", content=PYTHON_FENCE, reply_to=question)
    client.force_login(sam)

    page = client.get(reverse("assistant:conversation", kwargs={"conversation_id": conversation.pk})).content.decode()
    home = client.get("/").content.decode()

    assert '<div class="highlight"><pre>' in page and '<span class="kn">import</span>' in page
    head = page.split("</head>")[0]
    assert re.search(r'<link rel="stylesheet" href="/static/css/highlight[.\w]*\.css">', head)
    assert "highlight" not in home.split("</head>")[0]
