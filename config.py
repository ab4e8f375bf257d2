"""Settings, read from the environment (and an optional .env file)."""
import os
import secrets
from datetime import timedelta
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
    # The address subscribers reach: links in SMS and email, feeds, /api/v2 URLs. Unset, it is the address
    # `make run` serves on (PORT, default 5000); set it whenever anybody else is to open those links.
    PUBLIC_BASE_URL = (os.environ.get("PUBLIC_BASE_URL")
                       or f"http://127.0.0.1:{os.environ.get('PORT') or 5000}").rstrip("/")
    PAGE_NAME = os.environ.get("PAGE_NAME", "Lifeboat status")
    PAGE_TIME_ZONE = os.environ.get("PAGE_TIME_ZONE", "Etc/UTC")
    # Statuspage-style page id in /api/v2 JSON; empty = a stable id derived from PUBLIC_BASE_URL.
    PAGE_ID = os.environ.get("PAGE_ID", "")

    # Sessions: signed, HttpOnly, SameSite; Secure when served over https.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Reverse proxies in front of the app that set X-Forwarded-For/-Proto/-Host (0 = none, the default). Per-IP
    # limits (sign-in, personal-link codes) and the audit log use the client address the nearest N proxies
    # report; never set this higher than the proxies you run, or clients could choose their own address.
    PROXY_FIX_HOPS = int(os.environ.get("PROXY_FIX_HOPS", 0))
    SESSION_COOKIE_SECURE = PUBLIC_BASE_URL.startswith("https://")
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # "Keep me signed in" lasts this long; sign-out, a password change or disabling the operator ends it sooner.
    REMEMBER_COOKIE_DURATION = timedelta(days=int(os.environ.get("REMEMBER_COOKIE_DAYS", 14)))
    PERMANENT_SESSION_LIFETIME = 12 * 3600
    # Strict-Transport-Security on every https answer (behind a proxy: set PROXY_FIX_HOPS so https is seen).
    HSTS_SECONDS = int(os.environ.get("HSTS_SECONDS", 365 * 86400))

    # Bodies larger than this are refused with 413 (CSV uploads get their own limit later).
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", 16 * 1024 * 1024))
    WTF_CSRF_TIME_LIMIT = 12 * 3600

    # Sign-in throttling: this many failures in the window locks the account / the IP.
    SIGNIN_MAX_FAILURES_PER_ACCOUNT = 5
    SIGNIN_MAX_FAILURES_PER_IP = 20
    SIGNIN_WINDOW_SECONDS = 15 * 60

    # Phone numbers without a +country code are read as this region (ISO 3166 code).
    PHONE_DEFAULT_REGION = os.environ.get("PHONE_DEFAULT_REGION", "US")
    # The language operators write in (incident updates, broadcasts, offer descriptions): kept as written and
    # marked with this language where a subscriber reads another.
    OPERATOR_LANGUAGE = os.environ.get("OPERATOR_LANGUAGE", "en")
    # The account number /my gives as its example: one shaped like the provider's own (the phone example is
    # the numbering plan's for PHONE_DEFAULT_REGION).
    ACCOUNT_NUMBER_EXAMPLE = os.environ.get("ACCOUNT_NUMBER_EXAMPLE", "SK100001")

    # Public pages and JSON may be cached this long by browsers and CDNs, then served stale while one request
    # revalidates, or for a day while the origin answers with errors (core.renders).
    PUBLIC_CACHE_MAX_AGE = 30
    PUBLIC_STALE_WHILE_REVALIDATE = 60
    PUBLIC_STALE_IF_ERROR = 86400
    # Each web process asks the database whether public pages changed at most this often (seconds).
    PUBLIC_RENDER_CHECK_SECONDS = float(os.environ.get("PUBLIC_RENDER_CHECK_SECONDS", 1))

    # "Check my account" (/my) and personal links (/m/<token>), see accounts/selfservice.py and links.py.
    MY_CODE_TTL_SECONDS = 10 * 60  # a one-time code works this long
    MY_CODE_MAX_ATTEMPTS = 5  # guesses per code, right or wrong; then a new code must be requested
    MY_SESSION_SECONDS = 30 * 60  # a verified subscriber sees their page this long, then signs in again
    PERSONAL_LINK_TTL_DAYS = int(os.environ.get("PERSONAL_LINK_TTL_DAYS", 30))
    # Rate limits as (requests, window in seconds); the same answer for known and unknown accounts. Thousands of
    # subscribers may share one carrier NAT address, so the limits that stop abuse are per account or number
    # (SMS pumping to one phone, guessing one code); the per-IP ceilings only stop a single source flooding.
    MY_CODE_REQUESTS_PER_ACCOUNT = (3, 15 * 60)  # unknown inputs are counted too, by a keyed hash
    MY_CODE_RESEND_SECONDS = int(os.environ.get("MY_CODE_RESEND_SECONDS", 60))  # one code per input this often
    MY_CODE_REQUESTS_PER_IP = (int(os.environ.get("MY_CODE_REQUESTS_PER_IP", 3000)), 3600)
    # Every code request, site-wide: a brake on the SMS bill if someone walks through many real numbers.
    MY_CODE_REQUESTS_GLOBAL = (int(os.environ.get("MY_CODE_REQUESTS_GLOBAL", 100_000)), 3600)
    # Public subscriptions (/subscribe): requests per IP (wide: one carrier's NAT is many people), per address and
    # overall, each (limit, window seconds); a confirmation link lasts SUBSCRIBE_CONFIRM_SECONDS, and unconfirmed
    # subscriptions are deleted after it.
    SUBSCRIBE_PER_IP = (int(os.environ.get("SUBSCRIBE_PER_IP", 300)), 3600)
    SUBSCRIBE_PER_ADDRESS = (int(os.environ.get("SUBSCRIBE_PER_ADDRESS", 3)), 3600)
    SUBSCRIBE_GLOBAL = (int(os.environ.get("SUBSCRIBE_GLOBAL", 20_000)), 3600)
    SUBSCRIBE_CONFIRM_SECONDS = int(os.environ.get("SUBSCRIBE_CONFIRM_SECONDS", 2 * 24 * 3600))
    # SMS subscriptions: a texted code works this long, for this many guesses; only numbers of these regions
    # (ISO 3166 codes, comma-separated; default PHONE_DEFAULT_REGION) are texted, against SMS pumping.
    SUBSCRIBE_CODE_SECONDS = int(os.environ.get("SUBSCRIBE_CODE_SECONDS", 15 * 60))
    SUBSCRIBE_CODE_TRIES = int(os.environ.get("SUBSCRIBE_CODE_TRIES", 5))
    # Texts cost money: codes (new and resent) have their own overall budget besides SUBSCRIBE_GLOBAL.
    SUBSCRIBE_SMS_GLOBAL = (int(os.environ.get("SUBSCRIBE_SMS_GLOBAL", 2_000)), 3600)
    SUBSCRIBE_SMS_REGIONS = tuple(r.strip().upper() for r in os.environ.get(
        "SUBSCRIBE_SMS_REGIONS", os.environ.get("PHONE_DEFAULT_REGION", "US")).split(",") if r.strip())
    MY_VERIFY_PER_IP = (int(os.environ.get("MY_VERIFY_PER_IP", 5000)), 15 * 60)  # each code allows 5 guesses
    MY_LINK_FAILURES_PER_IP = (30, 3600)  # bad or expired tokens; good links are never limited (carrier NAT)

    # Twilio webhooks (notifications/webhooks.py): requests are verified with TWILIO_AUTH_TOKEN (refused when it is
    # not set); this key is used instead when Twilio signs with a SharedKey (X-Twilio-Webhooks-Signature-Settings).
    TWILIO_WEBHOOK_SHARED_KEY = os.environ.get("TWILIO_WEBHOOK_SHARED_KEY", "")
    # The name that starts our SMS replies to HELP, START and unknown keywords.
    SMS_SERVICE_NAME = os.environ.get("SMS_SERVICE_NAME", "Lifeboat")

    # Providers (notifications/providers.py from_config): Twilio SMS when the account, token and a sender are
    # set, SMTP email when SMTP_HOST is set; otherwise that channel goes to the log provider (runs offline).
    TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
    TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
    TWILIO_MESSAGING_SERVICE_SID = os.environ.get("TWILIO_MESSAGING_SERVICE_SID", "")  # preferred over FROM
    TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER", "")
    TWILIO_API_BASE_URL = os.environ.get("TWILIO_API_BASE_URL", "")  # empty = the real https://api.twilio.com
    # Always set: a hung connection must not hold a worker thread; a timeout after sending is ambiguous.
    TWILIO_TIMEOUT_SECONDS = float(os.environ.get("TWILIO_TIMEOUT_SECONDS", 10))
    SMTP_HOST = os.environ.get("SMTP_HOST", "")
    SMTP_PORT = int(os.environ.get("SMTP_PORT", 587))
    SMTP_USERNAME = os.environ.get("SMTP_USERNAME", "")
    SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD", "")
    SMTP_STARTTLS = os.environ.get("SMTP_STARTTLS", "1").strip().lower() in ("1", "true", "yes", "on")
    SMTP_TIMEOUT_SECONDS = float(os.environ.get("SMTP_TIMEOUT_SECONDS", 15))
    SMTP_IDLE_SECONDS = float(os.environ.get("SMTP_IDLE_SECONDS", 30))  # close a kept SMTP connection unused this long
    SMTP_MAX_PER_CONNECTION = int(os.environ.get("SMTP_MAX_PER_CONNECTION", 100))  # emails per SMTP session, then a new one
    # "Name <address>"; empty = Lifeboat <lifeboat@host of PUBLIC_BASE_URL>.
    MAIL_FROM = os.environ.get("MAIL_FROM", "")
    # The mailto: form of List-Unsubscribe (read by a person); unset = MAIL_FROM's address, "" = left out.
    UNSUBSCRIBE_MAILTO = os.environ.get("UNSUBSCRIBE_MAILTO")

    # The notifier worker (notifications/worker.py, `flask notifier run`). Rates are the provider's limits
    # for all workers together, on every machine (notifications/budget.py); 0 = the provider sets none.
    SMS_RATE_PER_SECOND = float(os.environ.get("SMS_RATE_PER_SECOND", 10))  # SMS segments per second
    EMAIL_RATE_PER_SECOND = float(os.environ.get("EMAIL_RATE_PER_SECOND", 10))
    # The rates hold at the provider, not only when sends start: see notifications/pacing.py. 0 = cap starts only.
    PACING_MARGIN_MS = float(os.environ.get("PACING_MARGIN_MS", 15))
    # Non-urgent SMS wait while the subscriber's local time is inside this window; "" turns it off.
    QUIET_HOURS = os.environ.get("QUIET_HOURS", "21:00-08:00")
    NOTIFIER_CONCURRENCY = int(os.environ.get("NOTIFIER_CONCURRENCY", 4))  # sends in flight per channel; --concurrency wins
    NOTIFIER_MAX_ATTEMPTS = int(os.environ.get("NOTIFIER_MAX_ATTEMPTS", 6))  # then the message is failed
    # A broadcast of more messages than this is staged and moved into the outbox by the workers in batches, so
    # posting it takes about what writing plain rows takes (notifications/staging.py); smaller ones go in at once.
    BROADCAST_INLINE_MAX = int(os.environ.get("BROADCAST_INLINE_MAX", 20_000))
    # A claimed row is another worker's to retry after this; keep it above the provider timeouts. Unset: 60 s on
    # PostgreSQL, 180 s on SQLite, where recording an outcome may wait out the 60 s busy timeout behind a long
    # import (notifications.worker.default_lease).
    NOTIFIER_LEASE_SECONDS = float(os.environ["NOTIFIER_LEASE_SECONDS"]) if os.environ.get("NOTIFIER_LEASE_SECONDS") \
        else None
    # Scheduled tasks (core/periodic.py), run by the notifier worker or `flask periodic run`; 0 turns a task off.
    PERIODIC_OFFERS_EXPIRE_SECONDS = int(os.environ.get("PERIODIC_OFFERS_EXPIRE_SECONDS", 300))
    PERIODIC_OFFERS_REMIND_SECONDS = int(os.environ.get("PERIODIC_OFFERS_REMIND_SECONDS", 900))
    PERIODIC_RATELIMIT_PRUNE_SECONDS = int(os.environ.get("PERIODIC_RATELIMIT_PRUNE_SECONDS", 3600))
    PERIODIC_RECEIPTS_PRUNE_SECONDS = int(os.environ.get("PERIODIC_RECEIPTS_PRUNE_SECONDS", 3600))
    PERIODIC_IMPORTS_PRUNE_SECONDS = int(os.environ.get("PERIODIC_IMPORTS_PRUNE_SECONDS", 3600))
    PERIODIC_LEASE_SECONDS = float(os.environ.get("PERIODIC_LEASE_SECONDS", 900))  # above any task's run time
    # The largest import file (console upload, or an API body sent for a background job), streamed to disk under
    # instance/imports/: no row limit. Bodies the API imports inline are capped by MAX_CONTENT_LENGTH.
    IMPORT_MAX_BYTES = int(os.environ.get("IMPORT_MAX_BYTES", 1 << 30))
    # A file import of at least IMPORT_PARALLEL_MIN_BYTES is read and checked in IMPORT_WORKERS processes, in
    # chunks of IMPORT_CHUNK_BYTES (accounts.imports.chunks); 0 or 1 worker: always in the job's own process.
    IMPORT_WORKERS = int(os.environ.get("IMPORT_WORKERS", min(os.cpu_count() or 1, 8)))
    IMPORT_PARALLEL_MIN_BYTES = int(os.environ.get("IMPORT_PARALLEL_MIN_BYTES", 8 << 20))
    IMPORT_CHUNK_BYTES = int(os.environ.get("IMPORT_CHUNK_BYTES", 1 << 20))
    IMPORT_RETENTION_DAYS = int(os.environ.get("IMPORT_RETENTION_DAYS", 30))  # uploaded CSVs hold personal data
    # Backups encrypted with age (ops/backup.py): the public keys ("age1...", space or comma separated) backups
    # are encrypted to, and the secret key ("AGE-SECRET-KEY-1...") a restore decrypts with. Empty: plain files.
    BACKUP_AGE_RECIPIENTS = os.environ.get("BACKUP_AGE_RECIPIENTS", "")
    BACKUP_AGE_IDENTITY = os.environ.get("BACKUP_AGE_IDENTITY", "")
    # Personal data kept only for a while (0 = forever): see notifications/retention.py, accounts/retention.py.
    MESSAGE_BODY_RETENTION_DAYS = int(os.environ.get("MESSAGE_BODY_RETENTION_DAYS", 90))
    INBOUND_SMS_RETENTION_DAYS = int(os.environ.get("INBOUND_SMS_RETENTION_DAYS", 90))
    VERIFICATION_CODE_RETENTION_DAYS = int(os.environ.get("VERIFICATION_CODE_RETENTION_DAYS", 7))
    ACCOUNT_CHANGES_RETENTION_DAYS = int(os.environ.get("ACCOUNT_CHANGES_RETENTION_DAYS", 180))
    EARLY_RECEIPT_RETENTION_DAYS = int(os.environ.get("EARLY_RECEIPT_RETENTION_DAYS", 7))
    RATELIMIT_KEEP_SECONDS = int(os.environ.get("RATELIMIT_KEEP_SECONDS", 86400))
    # The worker runs the due periodic tasks (offer expiry and reminders, pruning) this often; 0 = never.
    NOTIFIER_PERIODIC_SECONDS = float(os.environ.get("NOTIFIER_PERIODIC_SECONDS", 30))
    NOTIFIER_BACKOFF_SECONDS = float(os.environ.get("NOTIFIER_BACKOFF_SECONDS", 15))  # first retry, then doubled
    NOTIFIER_BACKOFF_CAP_SECONDS = float(os.environ.get("NOTIFIER_BACKOFF_CAP_SECONDS", 3600))
    # Each worker writes its send counts and provider latencies to its row in notifier_workers this often (and
    # when it stops); /metrics adds the rows up. A worker that reported within NOTIFIER_ALIVE_SECONDS is alive.
    NOTIFIER_TELEMETRY_SECONDS = float(os.environ.get("NOTIFIER_TELEMETRY_SECONDS", 5))
    NOTIFIER_ALIVE_SECONDS = float(os.environ.get("NOTIFIER_ALIVE_SECONDS", 30))
    PERIODIC_TELEMETRY_FOLD_SECONDS = int(os.environ.get("PERIODIC_TELEMETRY_FOLD_SECONDS", 3600))

    # Outbound webhooks (notifications/outbound/): targets must be https and resolve to public addresses only;
    # true also allows plain http and private, loopback and link-local addresses (tests, private deployments).
    WEBHOOKS_ALLOW_PRIVATE_TARGETS = os.environ.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS", "false").strip().lower() in (
        "1", "true", "yes", "on")
    WEBHOOKS_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOKS_TIMEOUT_SECONDS", 10))  # connect + send + answer
    WEBHOOKS_MAX_RESPONSE_BYTES = int(os.environ.get("WEBHOOKS_MAX_RESPONSE_BYTES", 64 * 1024))  # read no more
    # A PEM file of CAs to trust for webhook targets instead of the system's (a private CA); empty = the system's.
    WEBHOOKS_CA_FILE = os.environ.get("WEBHOOKS_CA_FILE", "")
    # Finished webhook deliveries and their attempt log are deleted this long after (daily task webhooks.prune).
    WEBHOOKS_LOG_RETENTION_DAYS = int(os.environ.get("WEBHOOKS_LOG_RETENTION_DAYS", 30))

    # /metrics (Prometheus text format) answers a scraper sending "Authorization: Bearer <secret>", where the
    # secret is this token (at least 16 characters, e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`)
    # or any live ops API token (`flask --app app tokens create EMAIL`). Empty: only API tokens are accepted.
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
