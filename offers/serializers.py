"""The JSON shape of a grant, shared by the ops API (offers.api) and the offer.accepted webhook event."""
from offers.models import OfferGrant
from offers.service import display_code
from ops.api import iso


def grant_json(g: OfferGrant) -> dict:
    """A grant as the ops API shows it (its code written XXXXX-XXXXX)."""
    return {"id": g.id, "program_id": g.program_id, "account_id": g.account_id,
            "code": display_code(g.code), "state": g.state.value, "offered_at": iso(g.offered_at),
            "accepted_at": iso(g.accepted_at), "fulfilled_at": iso(g.fulfilled_at),
            "revoked_at": iso(g.revoked_at), "revoke_reason": g.revoke_reason}
