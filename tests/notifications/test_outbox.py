"""The outbox: dedupe by cause, the worker sends due rows once through the provider."""
import sqlalchemy as sa

from core.db import db
from notifications import service, worker
from notifications.models import Channel, Notification, NotificationStatus
from notifications.providers import ProviderError


def queue(key="code:1", recipient="+12065550100", channel=Channel.SMS):
    n = service.enqueue(db.session, dedupe_key=key, channel=channel, recipient=recipient, body="Hello")
    db.session.commit()
    return n


def test_the_same_cause_is_queued_once(app):
    assert queue() is not None
    assert queue() is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 1


def test_the_worker_sends_each_due_message_once(app):
    queue("a")
    queue("b", recipient="ann@example.com", channel=Channel.EMAIL)
    assert worker.run_once(db.session) == 2
    rows = db.session.scalars(sa.select(Notification)).all()
    assert {r.status for r in rows} == {NotificationStatus.SENT}
    assert all(r.provider == "log" and r.provider_id == f"log-{r.id}" and r.attempts == 1 for r in rows)
    assert worker.run_once(db.session) == 0


class Failing:
    name = "failing"

    def __init__(self, retryable):
        self.retryable = retryable

    def send(self, message):
        raise ProviderError("30003", "Unreachable destination handset", retryable=self.retryable)


def test_a_retryable_error_requeues_with_backoff_and_a_permanent_one_fails(app):
    n = queue("a")
    worker.run_once(db.session, providers={"sms": Failing(True), "email": Failing(True)})
    db.session.refresh(n)
    assert n.status == NotificationStatus.QUEUED and n.error_code == "30003" and n.next_attempt_at > n.created_at
    m = queue("b")
    worker.run_once(db.session, providers={"sms": Failing(False), "email": Failing(False)})
    db.session.refresh(m)
    assert m.status == NotificationStatus.FAILED


def test_cli_once_reports_what_it_sent(app, runner):
    queue("a")
    result = runner.invoke(args=["notifier", "run", "--once"])
    assert result.exit_code == 0 and "Attempted 1 message(s)." in result.output
