"""Settings, read from the environment (and an optional .env file)."""
import os
import secrets
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

load_dotenv(BASE_DIR / ".env")


def _secret_key() -> str:
    """Use SECRET_KEY, or a random key kept in instance/ so sessions survive restarts."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    INSTANCE_DIR.mkdir(exist_ok=True)
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


class Config:
    """Defaults for every environment; tests override through create_app(test_config)."""

    SECRET_KEY = _secret_key()
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'lifeboat.db'}"
    )
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/")
    PAGE_NAME = os.environ.get("PAGE_NAME", "Lifeboat status")
    PAGE_TIME_ZONE = os.environ.get("PAGE_TIME_ZONE", "Etc/UTC")
    # Statuspage-style page id in /api/v2 JSON; empty = a stable id derived from PUBLIC_BASE_URL.
    PAGE_ID = os.environ.get("PAGE_ID", "")

    # Sessions: signed, HttpOnly, SameSite; Secure when served over https.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = PUBLIC_BASE_URL.startswith("https://")
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    PERMANENT_SESSION_LIFETIME = 12 * 3600

    # Bodies larger than this are refused with 413 (CSV uploads get their own limit later).
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", 16 * 1024 * 1024))
    WTF_CSRF_TIME_LIMIT = 12 * 3600

    # Sign-in throttling: this many failures in the window locks the account / the IP.
    SIGNIN_MAX_FAILURES_PER_ACCOUNT = 5
    SIGNIN_MAX_FAILURES_PER_IP = 20
    SIGNIN_WINDOW_SECONDS = 15 * 60

    # Phone numbers without a +country code are read as this region (ISO 3166 code).
    PHONE_DEFAULT_REGION = os.environ.get("PHONE_DEFAULT_REGION", "US")

    # Public pages and JSON may be cached this long by browsers and CDNs.
    PUBLIC_CACHE_MAX_AGE = 30

    # "Check my account" (/my) and personal links (/m/<token>), see accounts/selfservice.py and links.py.
    MY_CODE_TTL_SECONDS = 10 * 60  # a one-time code works this long
    MY_CODE_MAX_ATTEMPTS = 5  # guesses per code, right or wrong; then a new code must be requested
    MY_SESSION_SECONDS = 30 * 60  # a verified subscriber sees their page this long, then signs in again
    PERSONAL_LINK_TTL_DAYS = int(os.environ.get("PERSONAL_LINK_TTL_DAYS", 30))
    # Rate limits as (requests, window in seconds); the same answer for known and unknown accounts.
    MY_CODE_REQUESTS_PER_IP = (10, 3600)
    MY_CODE_REQUESTS_PER_ACCOUNT = (3, 15 * 60)  # unknown inputs are counted too, by a keyed hash
    MY_VERIFY_PER_IP = (30, 15 * 60)
    MY_LINK_FAILURES_PER_IP = (30, 3600)  # bad or expired tokens; good links are never limited (carrier NAT)
