"""Stored renders of public pages: built once per change, served from memory, kept when the database is not.

A crowd of worried subscribers reloads the same few pages. Each page is rendered once per change and then
served as stored bytes, already compressed (gzip and brotli), so a request costs the same whatever the
history behind it holds.

- What changed is one row, `public_generation`: a new random token is written in the same transaction as any
  change to a model a higher domain registered with `track()` (incidents, updates, components, groups), so
  every web process on every machine sharing the database sees a change when it commits. A random token
  (not a counter) also invalidates renders after a restore brings back an older database.
- Each process reads that token at most every PUBLIC_RENDER_CHECK_SECONDS (1 s): a change reaches every page
  within a second or two, and a request makes no query at all in between.
- Pages with day bars are also keyed by the UTC date, so they roll over at midnight by themselves.
- One thread rebuilds a stale render; the others keep serving the previous one meanwhile (stale while
  revalidate), so a change never stampedes the database.
- When the database is slow or down, the last good render is served (200, with its own "updated" time in
  the page). Renders are also written to instance/renders/, so a process started during the outage has them.
"""
import gzip
import hashlib
import logging
import os
import pickle
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain
from pathlib import Path
from typing import Callable

import brotli
import sqlalchemy as sa
from flask import Response, current_app, g, request
from flask_wtf.csrf import generate_csrf
from markupsafe import escape
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.bulk import dialect_insert
from core.db import UTCDateTime, db, utcnow
from core.web import negotiate_encoding

log = logging.getLogger(__name__)

MAX_RENDERS = 1024  # per process: every page of history and every incident of a busy year


class PublicGeneration(db.Model):
    """One row: the token of what public pages show now (see the module docstring)."""

    __tablename__ = "public_generation"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(sa.String(32))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---- what changes public pages: a registry the domains fill ---------------------------------------

_tracked: set[type] = set()


def track(*models: type) -> None:
    """Changes to these models (any insert, update or delete through the ORM) renew public renders."""
    _tracked.update(models)


def renew(connection) -> None:
    """Give the generation a new token, in the caller's transaction (so it commits with the change)."""
    values = {"token": secrets.token_hex(16), "changed_at": utcnow()}
    connection.execute(dialect_insert(connection)(PublicGeneration).values(id=1, **values)
                       .on_conflict_do_update(index_elements=["id"], set_=values))


@event.listens_for(Session, "after_flush")
def _renew_after_flush(session, flush_context) -> None:
    if _tracked and any(isinstance(o, tuple(_tracked)) for o in chain(session.new, session.dirty, session.deleted)):
        renew(session.connection())


@event.listens_for(Session, "do_orm_execute")
def _renew_after_bulk(state) -> None:
    """Bulk UPDATE/DELETE/INSERT statements on tracked tables bypass flush: renew for them too."""
    if not _tracked or not (state.is_update or state.is_delete or state.is_insert):
        return
    if any(mapper.class_ in _tracked for mapper in state.all_mappers):
        renew(state.session.connection())


# ---- stored renders -------------------------------------------------------------------------------

@dataclass
class Render:
    body: bytes
    gzip: bytes
    br: bytes
    etag: str
    mimetype: str
    status: int
    last_modified: datetime
    rendered_at: datetime
    token: str | None
    day: date | None
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, body: str | bytes, *, mimetype: str, status: int, last_modified: datetime, token: str | None,
           day: date | None, headers: tuple = ()) -> "Render":
        raw = body.encode("utf-8") if isinstance(body, str) else body
        return cls(body=raw, gzip=gzip.compress(raw, 6, mtime=0), br=brotli.compress(raw, quality=9),
                   etag=hashlib.sha256(raw).hexdigest()[:32], mimetype=mimetype, status=status,
                   last_modified=last_modified, rendered_at=utcnow(), token=token, day=day, headers=headers)


class Built:
    """What a page's build function returns: the body and how to serve it."""

    def __init__(self, body: str | bytes, *, mimetype: str = "text/html", status: int = 200,
                 last_modified: datetime | None = None, headers: tuple = ()):
        self.body, self.mimetype, self.status = body, mimetype, status
        self.last_modified, self.headers = last_modified, headers


class DatabaseDown(Exception):
    """No render of this page, and the database cannot make one."""


class RenderStore:
    """The renders of one web process (see the module docstring)."""

    def __init__(self, app, clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], date] = lambda: utcnow().date()):
        self.check_seconds = float(app.config["PUBLIC_RENDER_CHECK_SECONDS"])
        self.clock, self.today = clock, today  # injectable, so tests need not wait a second or a day
        self._renders: OrderedDict[str, Render] = OrderedDict()
        self._building = [threading.Lock() for _ in range(64)]
        self._lock = threading.Lock()
        self._token: str | None = None
        self._checked_at = float("-inf")
        self.database_ok = True

    # -- the generation token, read at most every check_seconds --
    def token(self) -> str | None:
        now = self.clock()
        if now - self._checked_at < self.check_seconds:
            return self._token
        self._checked_at = now
        try:
            with db.engine.connect() as conn:
                token = conn.scalar(sa.select(PublicGeneration.token).where(PublicGeneration.id == 1))
        except SQLAlchemyError as e:
            if self.database_ok:
                log.warning("Public pages: the database is unreachable (%s); serving the last good renders.", e)
            self.database_ok = False
            return self._token
        self.database_ok = True
        self._token = token
        return token

    def get(self, key: str) -> Render | None:
        with self._lock:
            render = self._renders.get(key)
            if render is not None:
                self._renders.move_to_end(key)
            return render

    def put(self, key: str, render: Render) -> None:
        with self._lock:
            self._renders[key] = render
            self._renders.move_to_end(key)
            while len(self._renders) > MAX_RENDERS:
                self._renders.popitem(last=False)
        self._save(key, render)

    def building(self, key: str) -> threading.Lock:
        """The lock one rebuild of `key` holds: one of a fixed set (striped by the key's hash), so guessed keys
        cannot grow memory; two keys sharing a stripe just rebuild one after the other."""
        return self._building[hash(key) % len(self._building)]

    # -- on disk, for a process that starts while the database is down --
    @property
    def directory(self) -> Path:
        return Path(current_app.instance_path) / "renders"

    def _path(self, key: str) -> Path:
        return self.directory / hashlib.sha256(key.encode()).hexdigest()

    def _save(self, key: str, render: Render) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self._path(key)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(pickle.dumps(render))
            os.replace(tmp, path)
        except OSError as e:  # a full or read-only disk costs the fallback, not the page
            log.warning("Public pages: could not keep a render on disk: %s", e)

    def load(self, key: str) -> Render | None:
        try:
            render = pickle.loads(self._path(key).read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            return None
        return render if isinstance(render, Render) else None


def store() -> RenderStore:
    return current_app.extensions["lifeboat_renders"]


def serve(key: str, build: Callable[[], Built], *, daily: bool = False) -> Response:
    """The page `key` from its stored render, rebuilt with `build()` when what it shows has changed."""
    renders = store()
    token = renders.token()
    day = renders.today() if daily else None
    render = renders.get(key)
    if render is not None and not renders.database_ok:
        return respond(render, "stale")  # kept while the database cannot be asked
    if render is not None and render.token == token and render.day == day:
        return respond(render, "hit")
    lock = renders.building(key)
    if render is not None and not lock.acquire(blocking=False):
        return respond(render, "stale")  # another thread is rebuilding it: the previous render meanwhile
    if render is None:
        lock.acquire()
        current = renders.get(key)  # built by the thread we waited for?
        if current is not None and current.token == token and current.day == day:
            lock.release()
            return respond(current, "hit")
    try:
        try:
            built = build()
        except SQLAlchemyError as e:
            db.session.rollback()
            fallback = render or renders.get(key) or renders.load(key)
            if fallback is None:
                raise DatabaseDown(str(e)) from e
            log.warning("Public pages: serving the last good render of %s (%s)", key, e)
            return respond(fallback, "stale")
        fresh = Render.of(built.body, mimetype=built.mimetype, status=built.status,
                          last_modified=built.last_modified or utcnow(), token=token, day=day,
                          headers=built.headers)
        if fresh.status == 200:  # a 404 is not kept: guessing ids must not push real pages out, nor fill the disk
            renders.put(key, fresh)
        return respond(fresh, "miss")
    finally:
        lock.release()


def respond(render: Render, how: str) -> Response:
    """The render in the best encoding the client accepts, with caching headers; 304 when it is fresh."""
    g.shared_page = True  # no cookie, no "Vary: Cookie" (core.web.SessionInterface)
    encoding = negotiate_encoding()
    body = {"br": render.br, "gzip": render.gzip}.get(encoding, render.body)
    response = Response(body, status=render.status, mimetype=render.mimetype)
    if encoding:
        response.headers["Content-Encoding"] = encoding
    for name, value in render.headers:
        response.headers[name] = value
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["X-Render"] = how
    config = current_app.config
    if render.status == 200:
        response.cache_control.public = True
        response.cache_control.max_age = config["PUBLIC_CACHE_MAX_AGE"]
        response.cache_control.stale_while_revalidate = config["PUBLIC_STALE_WHILE_REVALIDATE"]
        response.cache_control.stale_if_error = config["PUBLIC_STALE_IF_ERROR"]
        response.last_modified = render.last_modified
        response.set_etag(f"{render.etag}-{encoding}" if encoding else render.etag)
        return response.make_conditional(request)
    return response


def _unavailable(e: DatabaseDown):
    from flask import render_template

    from core.web import json_error, wants_json

    if wants_json():
        response = json_error(503, "This answer cannot be given right now. Please try again in a minute.")
        response.headers["Retry-After"] = "30"
        return response
    response = Response(render_template(
        "errors/error.html", code=503, title="Temporarily unavailable",
        message="This page cannot be shown right now. Please try again in a minute."), status=503)
    response.headers["Retry-After"] = "30"
    return response


def init_app(app) -> None:
    app.extensions["lifeboat_renders"] = RenderStore(app)
    app.register_error_handler(DatabaseDown, _unavailable)


# ---- private forms: rendered once, the visitor's CSRF token put in per request ---------------------

def csrf_form(template: str, context: Callable[[], dict]) -> Response:
    """`template`, a page that is the same for every visitor but for its form's CSRF token, answered without
    rendering it: it is rendered once per process with a marker where the token goes (`csrf_token()` in the
    template; `context()` gives the rest), then each answer is the bytes before the marker, this visitor's
    token (Flask-WTF's, kept in their session as for any form) and the bytes after it.

    Nothing of a visitor is kept: the render is made with the marker and with `shared_page` set (no flashed
    messages), and reads nothing from the request but its endpoint and addresses (the template must not show
    anything else from it). The answer itself stays private: a per-visitor token, a session cookie, whatever
    private headers the view adds. Callers render in full when the visitor has something of their own to see
    (a flashed message, a form's errors)."""
    cache = current_app.extensions.setdefault("lifeboat_csrf_forms", {})
    key = (template, request.script_root, g.get("lang"))  # one render per language
    parts = cache.get(key)
    if parts is None or current_app.debug:  # the debug server reloads templates: so does this
        marker = f"csrf-slot-{secrets.token_hex(16)}"
        html = current_app.jinja_env.get_template(template).render(
            **context(), csrf_token=lambda: marker, shared_page=True, page_lang=g.get("lang") or "en")
        before, found, after = html.partition(marker)
        if not found or marker in after:
            raise RuntimeError(f"{template} must show csrf_token() exactly once")
        parts = cache[key] = (before.encode(), after.encode())
    token = str(escape(generate_csrf()))  # URL-safe characters already: escaping is belt and braces
    return Response(b"".join((parts[0], token.encode(), parts[1])), mimetype="text/html")
