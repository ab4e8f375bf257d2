"""/history.atom: a valid Atom 1.0 feed with one entry per incident update."""
from xml.etree import ElementTree as ET

from core.db import db
from incidents import service
from ops.audit import Actor

ACTOR = Actor.cli("test")
NS = {"a": "http://www.w3.org/2005/Atom"}


def _incident(name, message="We are looking into it.", **data):
    incident = service.create_incident(db.session, actor=ACTOR, data={
        "name": name, "impact": "major", "status": "investigating", "message": message, **data})
    db.session.commit()
    return incident


def _feed(client):
    response = client.get("/history.atom")
    assert response.status_code == 200
    return response, ET.fromstring(response.data)


def test_the_feed_is_atom_with_the_required_feed_elements(client):
    response, feed = _feed(client)
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert feed.tag == "{http://www.w3.org/2005/Atom}feed"
    for tag in ("id", "title", "updated", "author/a:name"):
        assert feed.find(f"a:{tag}", NS) is not None, tag
    self_link = feed.find("a:link[@rel='self']", NS)
    assert self_link.get("href") == "http://status.example.com/history.atom"
    assert feed.findall("a:entry", NS) == []


def test_each_incident_update_is_an_entry_newest_first(client):
    contacts = service.create_component(db.session, actor=ACTOR, data={"name": "Contacts sync"})
    db.session.commit()
    first = _incident("Contacts sync failing", component_ids=[contacts.id],
                      component_statuses={str(contacts.id): "major_outage"})
    update = service.post_update(db.session, actor=ACTOR, incident_id=first.id,
                                 data={"status": "resolved", "message": "Fixed *for good*."})
    db.session.commit()
    _incident("Photos slow")
    _response, feed = _feed(client)
    entries = feed.findall("a:entry", NS)
    assert len(entries) == 3
    titles = [e.findtext("a:title", namespaces=NS) for e in entries]
    assert titles[1] == "Contacts sync failing — Resolved"
    assert set(titles) == {"Photos slow — Investigating", "Contacts sync failing — Resolved",
                           "Contacts sync failing — Investigating"}
    resolved = entries[1]
    url = f"http://status.example.com/incidents/{first.id}#update-{update.id}"
    assert resolved.findtext("a:id", namespaces=NS) == url
    assert resolved.find("a:link", NS).get("href") == url
    assert resolved.findtext("a:updated", namespaces=NS).endswith("Z")
    assert resolved.findtext("a:published", namespaces=NS)
    content = resolved.find("a:content", NS)
    assert content.get("type") == "html"
    assert "<em>for good</em>" in content.text
    assert "Contacts sync: major outage" in entries[2].find("a:content", NS).text
    assert len({e.findtext("a:id", namespaces=NS) for e in entries}) == 3
    assert feed.findtext("a:updated", namespaces=NS) == entries[0].findtext("a:updated", namespaces=NS)


def test_names_and_messages_with_markup_characters_are_escaped(client):
    _incident('Sync <&> "broken"', message="<script>alert(1)</script> & more")
    response, feed = _feed(client)
    assert b'Sync &lt;&amp;&gt; "broken"' in response.data
    entry = feed.find("a:entry", NS)
    assert entry.findtext("a:title", namespaces=NS) == 'Sync <&> "broken" — Investigating'
    assert "<script>" not in entry.find("a:content", NS).text  # inert: escaped by the Markdown renderer
    assert "&lt;script&gt;" in entry.find("a:content", NS).text


def test_the_feed_is_cacheable(client):
    _incident("Email delayed")
    response, _feed_el = _feed(client)
    assert "max-age" in response.headers["Cache-Control"]
    assert client.get("/history.atom", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
