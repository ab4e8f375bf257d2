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
