"""Offers' datasets for ops.exports: programs and grants in every state."""
import sqlalchemy as sa

from offers.models import OfferGrant, OfferProgram
from ops import exports


def register() -> None:
    exports.register(exports.Dataset(
        "offer_programs", "Compensation programs: terms, eligibility, validity, budget, state.",
        lambda: sa.select(*OfferProgram.__table__.columns), personal=False))
    exports.register(exports.Dataset(
        "offer_grants", "Every grant in every state (offered, accepted, declined, expired, fulfilled, revoked), "
        "with its code and dates.", lambda: sa.select(*OfferGrant.__table__.columns)))
