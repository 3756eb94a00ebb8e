from __future__ import annotations

import pytest

from portal.assistant.rendering import render_markdown

CITATIONS = {1: "/knowledge/documents/5/#page-3", 2: "/knowledge/documents/9/"}


def test_it_renders_markdown_and_links_citations_to_the_document_page():
    html = render_markdown("**Refunds** take 14 days [1].\n\n- one\n- two", CITATIONS)

    assert "<strong>Refunds</strong>" in html
    assert '<a href="/knowledge/documents/5/#page-3"' in html and ">[1]</a>" in html
    assert "<li>one</li>" in html


def test_it_leaves_numbers_that_were_not_sent_as_plain_text():
    html = render_markdown("See [7] and [2].", CITATIONS)

    assert "[7]" in html and 'href="/knowledge/documents/9/"' in html
    assert html.count("<a ") == 1


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        '<img src="https://evil.example/pixel.png">',
        "![tracker](https://evil.example/t.gif)",
        '<a href="javascript:alert(1)">click</a>',
        "[click](javascript:alert(1))",
        '<p onclick="alert(1)" onmouseover="steal()">hover</p>',
        '<iframe src="https://evil.example/"></iframe>',
        '<svg onload="alert(1)"><circle/></svg>',
        '<style>body{background:url("https://evil.example/x")}</style>',
        '<a href="data:text/html,<script>alert(1)</script>">data</a>',
        '<form action="https://evil.example/"><input name="x"></form>',
        '<div style="background:url(https://evil.example/x)">styled</div>',
    ],
)
def test_hostile_model_output_cannot_run_script_or_load_anything(hostile: str):
    html = render_markdown(hostile + "\n\nplain words stay", CITATIONS).lower()

    for forbidden in ("<script", "<img", "<iframe", "<svg", "<style", "<form", "<input", "javascript:", "onclick",
                      "onload", "onmouseover", "evil.example", "style=", "data:text"):  # fmt: skip
        assert forbidden not in html
    assert "plain words stay" in html


@pytest.mark.parametrize(
    "href",
    ["https://evil.example/", "http://evil.example/", "//evil.example/path", "/\\evil.example", "mailto:a@b.c"],
)
def test_links_may_only_point_to_the_portal_itself(href: str):
    html = render_markdown(f"[go]({href}) and <{href}>", {})

    assert "href" not in html
    assert "go" in html


@pytest.mark.parametrize(
    "href",
    ["/&#9;/evil.example/x", "/&#10;/evil.example/x", "/&#13;\\evil.example", "&#1;//evil.example", " //evil.example"],
)
def test_links_the_browser_would_read_as_another_host_are_dropped(href: str):
    # Browsers remove tabs and newlines inside a URL and control characters around it before parsing.
    html = render_markdown(f'<a href="{href}">go</a>', {})

    assert "href" not in html and "evil.example" not in html.replace("go", "")
    assert "go" in html


def test_relative_links_to_portal_pages_survive():
    html = render_markdown("[the handbook](/knowledge/documents/1/) and [top](#top)", {})

    assert 'href="/knowledge/documents/1/"' in html and 'href="#top"' in html
