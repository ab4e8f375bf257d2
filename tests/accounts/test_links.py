"""Personal links (/m/<token>): open the personal page, expire, revoke, stored hashed, rate-limited."""
from datetime import timedelta

import sqlalchemy as sa

from accounts import links
from accounts.models import Account, AffectedAccount, PersonalLink
from core.db import db, utcnow
from ops.models import AuditEntry
from tests.accounts.factories import RECOVERY_HEADER, attach, make_incident, run_import

INVALID = "This link has expired or is no longer valid."


def affected_id(number: str, incident_id: int | None = None) -> int:
    q = sa.select(AffectedAccount.id).join(Account).where(Account.account_number == number)
    if incident_id is not None:
        q = q.where(AffectedAccount.incident_id == incident_id)
    return db.session.scalar(q)


def new_link(number: str = "A1", **kwargs) -> str:
    token = links.issue_link(db.session, affected_id(number), **kwargs)
    db.session.commit()
    return token


def setup_accounts():
    incident = make_incident()
    attach(incident.id, "A1", "A2")
    run_import(incident.id, RECOVERY_HEADER + "A1,photos,recovered,10,10,\nA2,photos,lost,5,0,A2 only\n",
               kind="recovery")
    return incident


def test_a_personal_link_opens_the_page_and_leaves_the_address_bar(client):
    setup_accounts()
    token = new_link()
    assert len(token) == 16
    response = client.get(f"/m/{token}")
    assert response.status_code == 303 and response.headers["Location"].endswith("/my/account")
    assert response.headers["Cache-Control"] == "private, no-store"
    page = client.get("/my/account")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Account A1" in html and "We recovered your photos." in html
    assert "A2 only" not in html and token not in html
    assert page.headers["Cache-Control"] == "private, no-store"
    assert db.session.scalar(sa.select(PersonalLink.last_used_at)) is not None


def test_a_link_opens_only_its_own_incident(client):
    first = setup_accounts()
    second = make_incident(name="Calendar sync outage", categories=("calendar",))
    attach(second.id, "A1")
    token = links.issue_link(db.session, affected_id("A1", second.id))
    db.session.commit()
    client.get(f"/m/{token}")
    html = client.get("/my/account").get_data(as_text=True)
    assert "Calendar sync outage" in html and first.name not in html


def test_the_link_is_stored_hashed(app):
    setup_accounts()
    token = new_link()
    row = db.session.scalars(sa.select(PersonalLink)).one()
    assert row.token_hash == links.hash_token(token) and token not in row.token_hash
    with db.engine.connect() as conn:
        dumped = " ".join(str(v) for r in conn.execute(sa.text("SELECT * FROM personal_links")) for v in r)
    assert token not in dumped


def test_expired_revoked_and_unknown_links_get_the_same_friendly_page(app):
    setup_accounts()
    expired, revoked = new_link("A2"), new_link("A1")
    db.session.execute(sa.update(PersonalLink).where(PersonalLink.token_hash == links.hash_token(expired))
                       .values(expires_at=utcnow() - timedelta(minutes=1)))
    assert links.revoke_links(db.session, affected_id("A1")) == 1
    db.session.commit()
    answers = []
    for token in (expired, revoked, "AAAAAAAAAAAAAAAA", "short", "x" * 200):
        client = app.test_client()
        response = client.get(f"/m/{token}")
        answers.append((response.status_code, response.get_data(as_text=True)))
        assert client.get("/my/account").status_code == 303
    assert all(a == answers[0] for a in answers)
    assert answers[0][0] == 404 and INVALID in answers[0][1] and 'href="/my"' in answers[0][1]


def test_revoking_one_accounts_links_leaves_others_working(client):
    setup_accounts()
    mine, other = new_link("A1"), new_link("A2")
    links.revoke_links(db.session, affected_id("A1"))
    db.session.commit()
    assert client.get(f"/m/{mine}").status_code == 404
    assert client.get(f"/m/{other}").status_code == 303


def test_good_links_are_never_limited_but_bad_tokens_are_per_ip(app, client):
    app.config["MY_LINK_FAILURES_PER_IP"] = (3, 3600)
    setup_accounts()
    token = new_link()
    for _ in range(5):  # subscribers behind one carrier NAT address opening their own links
        assert client.get(f"/m/{token}").status_code == 303
    for _ in range(3):
        client.get("/m/AAAAAAAAAAAAAAAA")
    response = client.get(f"/m/{token}")
    assert response.status_code == 429 and "Too many attempts" in response.get_data(as_text=True)
    assert client.get(f"/m/{token}", environ_base={"REMOTE_ADDR": "10.2.0.1"}).status_code == 303


def test_link_ttl_comes_from_config_or_the_caller(app):
    setup_accounts()
    new_link()
    new_link(ttl_days=2)
    first, second = db.session.scalars(sa.select(PersonalLink).order_by(PersonalLink.id)).all()
    assert abs((first.expires_at - first.created_at) - timedelta(days=app.config["PERSONAL_LINK_TTL_DAYS"])) \
        < timedelta(seconds=1)
    assert abs((second.expires_at - second.created_at) - timedelta(days=2)) < timedelta(seconds=1)


def test_the_cli_prints_a_fresh_link_that_works(runner, client):
    incident = setup_accounts()
    result = runner.invoke(args=["accounts", "link", str(incident.id), "A1"])
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert url.startswith("http://status.example.com/m/") and len(url.rsplit("/", 1)[1]) == 16
    assert client.get(url.replace("http://status.example.com", "")).status_code == 303
    # It signs the subscriber in, so who made it is audited: with the link's id, never its token.
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "link.issue"))
    link = db.session.scalar(sa.select(PersonalLink))
    assert entry.actor.startswith("cli ") and entry.entity_label == "A1" and entry.after["link_id"] == link.id
    assert url.rsplit("/", 1)[1] not in str(entry.after)


def test_the_cli_revokes_links_and_explains_unknown_accounts(runner, client):
    incident = setup_accounts()
    token = new_link()
    result = runner.invoke(args=["accounts", "revoke-links", str(incident.id), "A1"])
    assert result.exit_code == 0 and "Revoked 1 link." in result.output
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "link.revoke"))
    assert entry.after == {"incident_id": incident.id, "revoked": 1}
    assert client.get(f"/m/{token}").status_code == 404
    result = runner.invoke(args=["accounts", "link", str(incident.id), "NOPE"])
    assert result.exit_code != 0 and "not attached" in result.output
