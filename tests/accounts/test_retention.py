"""Personal data the accounts domain keeps only for a while: expired verification codes and the history of
contact changes are deleted by the daily scheduled task once past their retention; newer ones stay."""
import secrets
from datetime import timedelta

import sqlalchemy as sa

from accounts.models import AccountChange, VerificationCode
from core import periodic
from core.db import db, utcnow
from notifications.models import Account


def code(account, expired_days_ago: float) -> VerificationCode:
    expires = utcnow() - timedelta(days=expired_days_ago)
    c = VerificationCode(account_id=account.id, challenge_hash=secrets.token_hex(32), code_hash="x" * 64,
                         channel="sms", created_at=expires - timedelta(minutes=10), expires_at=expires)
    db.session.add(c)
    return c


def test_old_codes_and_contact_changes_go_and_recent_ones_stay(app):
    ann = Account(account_number="R1", name="Ann", phone="+12065550100")
    db.session.add(ann)
    db.session.flush()
    old_code, new_code = code(ann, 8), code(ann, 1)
    old_change = AccountChange(account_id=ann.id, field="phone", old_value="+12065550199",
                               new_value="+12065550100", source="import 1", at=utcnow() - timedelta(days=181))
    new_change = AccountChange(account_id=ann.id, field="email", old_value=None, new_value="ann@example.com",
                               source="import 2", at=utcnow() - timedelta(days=10))
    db.session.add_all([old_change, new_change])
    db.session.commit()
    ids = (old_code.id, new_code.id, old_change.id, new_change.id)

    outcome = periodic.run_due()["accounts.retention"]

    assert outcome == "1 verification codes and 1 contact changes deleted"
    db.session.expire_all()
    assert db.session.scalars(sa.select(VerificationCode.id)).all() == [ids[1]]
    assert db.session.scalars(sa.select(AccountChange.id)).all() == [ids[3]]


def test_a_retention_of_0_keeps_everything(app):
    app.config.update(VERIFICATION_CODE_RETENTION_DAYS=0, ACCOUNT_CHANGES_RETENTION_DAYS=0)
    ann = Account(account_number="R2", name="Ann")
    db.session.add(ann)
    db.session.flush()
    code(ann, 400)
    db.session.add(AccountChange(account_id=ann.id, field="phone", source="x", at=utcnow() - timedelta(days=999)))
    db.session.commit()
    assert periodic.run_due()["accounts.retention"] == "0 verification codes and 0 contact changes deleted"
