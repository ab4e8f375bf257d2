"""Markdown for public messages: CommonMark without raw HTML, then sanitised again by nh3."""
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


def plain(text: str) -> str:
    """The message as plain text (for feeds, SMS and JSON bodies we keep the Markdown source)."""
    return nh3.clean(_md.render(text or ""), tags=set()).strip()
