"""core.markdown: the sanitised HTML of public messages, and the plain text SMS and text email carry."""
from core.markdown import plain, render


def test_plain_text_keeps_paragraphs_lists_and_links_and_decodes_entities():
    text = "Photos & contacts: **most** are back.\nCheck again soon.\n\n- one\n- two\n\n[Details](https://x.example/a?b=1&c=2)"
    assert plain(text) == ("Photos & contacts: most are back.\nCheck again soon.\n\n- one\n- two\n\n"
                           "Details (https://x.example/a?b=1&c=2)")


def test_plain_text_shows_raw_html_as_typed_and_a_bare_link_once():
    assert plain("<b>hi</b> <script>x</script>") == "<b>hi</b> <script>x</script>"
    assert plain("[https://x.example](https://x.example)") == "https://x.example"
    assert plain("") == ""


def test_html_is_sanitised():
    html = str(render("**a** <img src=x onerror=alert(1)> [x](javascript:alert(1))"))
    assert "<strong>a</strong>" in html and "<img" not in html and "href=\"javascript" not in html
