"""Markdown for public messages: CommonMark without raw HTML, then sanitised again by nh3."""
import html
import re

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
_TAGS = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "a", "blockquote", "h3", "h4", "hr"}


def render(text: str) -> Markup:
    """Render untrusted Markdown to HTML that is safe to embed in a page."""
    html = _md.render(text or "")
    return Markup(nh3.clean(html, tags=_TAGS, attributes={"a": {"href", "title"}},
                            url_schemes={"http", "https", "mailto"}, link_rel="nofollow noopener"))


_LINK = re.compile(r'<a href="([^"]*)"[^>]*>(.*?)</a>', re.S)
_BLOCK_END = re.compile(r"</(?:p|h\d|blockquote|pre|ul|ol)>\n?")


def _link_text(m: re.Match) -> str:
    href, label = html.unescape(m.group(1)), m.group(2)
    return label if html.unescape(label) == href else f"{label} ({href})"


def plain(text: str) -> str:
    """The message as plain text for SMS and text email: emphasis dropped, paragraphs kept apart by a blank
    line, list items as "- item", links as "label (url)", and entities decoded ("&", not "&amp;")."""
    out = _md.render(text or "")  # html=False: every tag here is markdown-it's own, in its own form
    out = _LINK.sub(_link_text, out)
    out = re.sub(r"<br\s*/?>\n?", "\n", out)
    out = re.sub(r"<li>(?:<p>)?", "- ", out)
    out = re.sub(r"(?:</p>)?</li>\n?", "\n", out)
    out = _BLOCK_END.sub("\n\n", out)
    out = html.unescape(re.sub(r"<[^>]+>", "", out))
    return re.sub(r"\n{3,}", "\n\n", out).strip()
