"""No live secret in the record: what a stored message keeps of the personal links and codes it carried.

The subscriber receives the real text; the outbox row, the inbound SMS log, exports and backups keep it with
each personal link written as "/m/[link #ID]" (which link it was, not the token that opens it) and each
one-time code as "[code]". Anyone who can read the message log can then see what was sent without being able
to sign in as the subscriber.

- `mask(text, known)` masks a text: `known` maps tokens the caller issued to their link ids (accounts.links
  notes each token it issues in `session.info[ISSUED]`, so the worker needs no lookup); other tokens are looked up through the resolver accounts
  registers (`register_link_resolver`), or written "/m/[link]".
- Messages whose text is a code (verification codes) register their template with `register_code_template`:
  every run of 6 to 8 digits in them is a code.
"""
import re
from collections.abc import Callable

LINK = re.compile(r"/m/([A-Za-z0-9_-]{16,})")
CODE = re.compile(r"(?<!\d)\d{6,8}(?!\d)")
MASKED = "/m/[link"  # how every masked link begins
MASKED_LINK = MASKED + " #{}]"
MASKED_CODE = "[code]"

ISSUED = "lifeboat.issued_links"  # session.info key: {token: link id} of the links issued in this session
_resolver: Callable[[str], int | None] | None = None
_code_templates: set[str] = set()


def register_link_resolver(resolver: Callable[[str], int | None]) -> None:
    """`resolver(token)` -> the personal link's id, or None (accounts.links knows the tokens' hashes)."""
    global _resolver
    _resolver = resolver


_patterns: list[tuple[re.Pattern, str]] = []


def register_pattern(pattern: str, replacement: str) -> None:
    """Another kind of secret link (e.g. a subscription's signed confirm or manage link): masked wherever it
    is stored."""
    compiled = re.compile(pattern)
    if all(p.pattern != compiled.pattern for p, _r in _patterns):
        _patterns.append((compiled, replacement))


def register_code_template(template: str) -> None:
    """Messages of this template carry a one-time code; stored, it is masked."""
    _code_templates.add(template)


def mask(text: str | None, known: dict[str, int] | None = None, *, template: str = "") -> str | None:
    """`text` as it may be stored: personal links by id, codes of code templates masked."""
    if not text:
        return text
    if "/m/" in text:
        def one(match):
            token = match.group(1)
            link_id = (known or {}).get(token)
            if link_id is None and _resolver is not None:
                try:
                    link_id = _resolver(token)
                except RuntimeError:  # outside an app context (a worker's claim): masked without its id
                    link_id = None
            return MASKED_LINK.format(link_id) if link_id is not None else MASKED + "]"
        text = LINK.sub(one, text)
    for pattern, replacement in _patterns:
        text = pattern.sub(replacement, text)
    if template in _code_templates:
        text = CODE.sub(MASKED_CODE, text)
    return text


def holds_secret(text: str | None, *, template: str = "") -> bool:
    """True if `text` still carries a live link or code (what `mask` would change)."""
    return bool(text) and (LINK.search(text) is not None or any(p.search(text) for p, _r in _patterns)
                           or (template in _code_templates and CODE.search(text) is not None))
