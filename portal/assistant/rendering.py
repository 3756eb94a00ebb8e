"""Model output as sanitized HTML: markdown, then nh3 with an allow-list.

Model output is untrusted (a prompt injection in a document can make the model write anything), so:
no script, no style, no event handler, no image at all (an <img> would load a remote resource the
moment the page opens), and links only to the portal's own pages (relative paths): any other href is
dropped and the link text stays as plain text.

Fenced code with a language is coloured by Pygments on the server (markdown's codehilite): CSS classes only,
never inline styles, and nh3 keeps a class only when it is one of Pygments' token classes. The colours are in
static/css/highlight.css (see portal/assistant/highlight_css.py).
"""

from __future__ import annotations

import html as html_text
import re
from collections.abc import Iterable, Mapping
from typing import IO, Any

import markdown
import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from pygments.formatters import HtmlFormatter
from pygments.token import STANDARD_TYPES, Text, _TokenType

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a", "sup", "del",
    "div", "span",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}
HIGHLIGHT_CLASS = "highlight"
# Pygments' short token classes ("k", "s2", "c1"...) and "hll" (a line marked with hl_lines): any other class
# is dropped, so model output cannot borrow the portal's own classes (a fake "alert" or "button").
TOKEN_CLASSES = frozenset(name for name in STANDARD_TYPES.values() if name) | {"hll"}
ALLOWED_CLASSES = {"div": {HIGHLIGHT_CLASS}, "span": set(TOKEN_CLASSES)}
CLEAN_CONTENT_TAGS = {"script", "style"}
# "/page" or "#anchor"; never "//host" or "/\host" (browsers treat both as another host).
_OWN_PAGE = re.compile(r"^(?:/(?![/\\])|#)")
_CITATION = re.compile(r"\[(\d{1,3})\](?!\()")


# Browsers drop tabs and newlines anywhere in a URL and C0 controls or spaces around it before parsing
# (WHATWG URL standard), so "/\t/evil.example" opens //evil.example: judge the URL the browser will see.
_URL_IGNORED = re.compile(r"[\t\n\r]")
_URL_TRIMMED = "".join(chr(code) for code in range(0x21))


def _keep_own_links(element: str, attribute: str, value: str) -> str | None:
    if element == "a" and attribute == "href":
        seen_by_browser = _URL_IGNORED.sub("", value).strip(_URL_TRIMMED)
        return seen_by_browser if _OWN_PAGE.match(seen_by_browser) else None
    return value


def sanitize_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags=CLEAN_CONTENT_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        attribute_filter=_keep_own_links,
        url_schemes=set(),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def link_citations(text: str, citation_urls: Mapping[int, str]) -> str:
    """Turn `[n]` markers into markdown links to the cited passage (only numbers we actually sent)."""

    def replace(match: re.Match[str]) -> str:
        number = int(match.group(1))
        url = citation_urls.get(number)
        if not url:
            return match.group(0)
        return f'[\\[{number}\\]]({url} "Source {number}")'

    return _CITATION.sub(replace, text)


class PlainUnlessHighlightedFormatter(HtmlFormatter):
    """Pygments' HTML with token classes; a block Pygments has no lexer for (a fence without a language, or with
    one it does not know, or an indented block) stays a plain <pre><code>, as it was before highlighting."""

    def format_unencoded(self, tokensource: Iterable[tuple[_TokenType, str]], outfile: IO[str]) -> None:
        tokens = list(tokensource)
        if all(token_type in Text for token_type, _ in tokens):
            outfile.write("<pre><code>" + html_text.escape("".join(value for _, value in tokens), quote=False))
            outfile.write("</code></pre>\n")
            return
        super().format_unencoded(tokens, outfile)


MARKDOWN_EXTENSIONS = ["fenced_code", "tables", "sane_lists", "codehilite"]
MARKDOWN_CONFIG: dict[str, dict[str, Any]] = {
    "codehilite": {
        "css_class": HIGHLIGHT_CLASS,
        "guess_lang": False,  # colour only what the fence names: guessing colours prose as some language
        "noclasses": False,  # classes, never style="" (nh3 drops every style attribute)
        "pygments_formatter": PlainUnlessHighlightedFormatter,
    }
}


def render_markdown(text: str, citation_urls: Mapping[int, str] | None = None) -> SafeString:
    try:
        source = link_citations(text, citation_urls or {})
        html = markdown.markdown(
            source, extensions=MARKDOWN_EXTENSIONS, extension_configs=MARKDOWN_CONFIG, output_format="html"
        )
    except Exception:  # noqa: BLE001 - a markdown failure must not hide the answer: show it as text
        html = "<p>" + str(escape(text)) + "</p>"
    return mark_safe(sanitize_html(html))  # noqa: S308 - sanitized by nh3 just above


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)


def render_markdown_partial(text: str) -> SafeString:
    """An answer still streaming, rendered as it will look when complete: an open code fence is closed for
    now (so the rest is not shown as a paragraph of backticks). Sanitized like any model output."""
    fences = _FENCE.findall(text)
    if len(fences) % 2:
        text = text.rstrip("\n") + "\n" + fences[-1] + "\n"
    return render_markdown(text)
