"""Settings, read once from the environment (prefix ``GAMEPORTAL_``).

Defaults are safe for a laptop; ``GAMEPORTAL_ENV=production`` refuses to start with
anything that is only fit for one (a generated or short secret).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import stat
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The development default of earlier versions: published, so anyone could sign tokens with
# it. Refused wherever it turns up (an old .env), in every mode.
PUBLIC_SECRET_KEYS = frozenset({"dev-insecure-secret-key-change-me-0123456789"})
MIN_SECRET_LENGTH = 32
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name in the data folder)


class SecretKeyFileError(ValueError):
    """The data folder's secret key file cannot be made or used; the message says why."""


def data_dir_secret_key(data_dir: Path) -> str:
    """The secret key kept in the data folder, made on first use (random, mode 0600).

    Every process started on one data folder (serve, its uvicorn workers and queue worker,
    each CLI command) reads the same file, so they all sign and verify with one key. Two
    processes starting at once on a new folder agree too: the key is written to a private
    temporary file and linked into place, which only one of them can do."""
    path = data_dir / SECRET_KEY_FILE
    try:
        return _read_secret_key(path)
    except FileNotFoundError:
        pass
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: use its
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return _read_secret_key(path)
    except OSError as exc:
        raise SecretKeyFileError(
            f"cannot keep a generated secret key in {path} ({exc.strerror or exc}); make the "
            "data folder writable or set GAMEPORTAL_SECRET_KEY"
        ) from None


def _read_secret_key(path: Path) -> str:
    with path.open() as handle:  # FileNotFoundError: not made yet
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        key = handle.read().strip()
    if mode & 0o077:
        raise SecretKeyFileError(
            f"{path} can be read by other users (mode {mode:04o}); `chmod 600 {path}`, or "
            "delete it to have a new key made (every session and mailed link then ends)"
        )
    if len(key) < MIN_SECRET_LENGTH:
        raise SecretKeyFileError(
            f"{path} holds no key of at least {MIN_SECRET_LENGTH} characters; delete it to "
            "have a new one made, or set GAMEPORTAL_SECRET_KEY"
        )
    return key


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GAMEPORTAL_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"

    # Database. Unset: the CLI starts an embedded PostgreSQL with its data in data_dir.
    database_url: str | None = None
    # Everything the service keeps on this machine: the embedded database, local media,
    # the development mail outbox. Made absolute once, here, so every process and
    # command of one run agrees on it whatever its working folder.
    data_dir: Path = Path("./var")
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)

    # Tokens. Signs access tokens, device tokens and unsubscribe links. Unset: outside
    # production, a random key made on first start and kept in data_dir/secret_key
    # (with_secret_key); production refuses to start without one (every instance must
    # share it).
    secret_key: str = ""
    jwt_issuer: str = "gameportal"
    jwt_audience: str = "gameportal-api"
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=30, le=24 * 3600)
    session_ttl_days: int = Field(default=30, ge=1, le=365)
    session_idle_days: int = Field(default=14, ge=1, le=365)
    # Ended sessions (and their spent refresh tokens) are kept this long for support and
    # forensics, then `gameportal prune` deletes them.
    session_retention_days: int = Field(default=30, ge=0, le=3650)
    # Two tabs (or a retried request) refreshing with one token at once: a replay of the
    # token rotated this many seconds ago or less, from the device that rotated it, gets
    # the same successor instead of ending the session (as Supabase Auth and Auth0 offer;
    # identity/tokens.py). 0 turns it off: every replay ends the session.
    refresh_reuse_grace_seconds: int = Field(default=10, ge=0, le=300)
    # Stream tickets (POST /api/v1/me/notifications/stream-ticket): how long one may wait
    # to be used. A browser's EventSource asks for one just before it connects.
    stream_ticket_ttl_seconds: int = Field(default=30, ge=5, le=300)

    # Passwords (argon2id; OWASP: m=19 MiB, t=2, p=1)
    argon2_memory_kib: int = Field(default=19456, ge=8192)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)
    # Niceness of the hashing threads: higher keeps other requests fast during a login
    # storm, lower gives logins more of the CPU on a busy machine. Measured (Linux 6.18,
    # 2 cores, benchmarks/identity.py's login run, 6 rounds each): /healthz's p99 during
    # logins was 2.0-3.7x idle at 10 (over 3x in 5 rounds) and 2.0-2.6x at 19, logins
    # 0.81-0.86x raw argon2 at both; with GET /me saturating the event loop beside them,
    # logins made 37-38/s at 10 and 35-39/s at 19 (44-49/s at 0, /me's p99 then 21-22 ms
    # instead of 14-20).
    hash_thread_nice: int = Field(default=19, ge=0, le=19)
    password_min_length: int = Field(default=8, ge=8)
    password_max_length: int = Field(default=128, ge=64, le=1024)
    password_min_score: int = Field(default=3, ge=0, le=4)

    # Login throttling (kept in PostgreSQL so it holds across instances)
    login_max_failures_per_account: int = Field(default=10, ge=1)
    login_max_failures_per_ip: int = Field(default=100, ge=1)
    login_failure_window_seconds: int = Field(default=15 * 60, ge=1)
    login_lockout_seconds: int = Field(default=15 * 60, ge=1)
    # Device tokens (identity/tokens.py): a login that brings back the token of an earlier
    # login on this account is counted on that token alone, this many failures per window.
    login_max_failures_per_device: int = Field(default=10, ge=1)
    device_token_ttl_days: int = Field(default=365, ge=1, le=3650)
    # Registration throttling, per client address (an IPv6 /64 counts as one address):
    # at most this many attempts per window, also kept in PostgreSQL.
    registration_max_per_ip: int = Field(default=20, ge=1)
    registration_window_seconds: int = Field(default=3600, ge=1)

    # Where browsers reach this service (scheme, host, port, a proxy's path prefix): media
    # URLs and the media links in content HTML are absolute on it, and links in mail point
    # here. Never taken from a request's Host (answers are cached). `gameportal serve`
    # without it: where it listens.
    public_base_url: str = "http://127.0.0.1:8000"
    # With an https public_base_url, every answer tells browsers to use only HTTPS for
    # this host for this long (Strict-Transport-Security); 0 sends no such header (a
    # TLS proxy in front that sets its own, say).
    hsts_seconds: int = Field(default=31_536_000, ge=0)
    # The links in account mail, `{token}` standing for the link's token, so that a
    # publisher's own site can take them (it then calls the API with the token). Unset:
    # gameportal's own pages on public_base_url (/verify-email, /reset-password,
    # /unsubscribe?token=...).
    verify_email_url_template: str | None = None
    reset_password_url_template: str | None = None
    unsubscribe_url_template: str | None = None

    # Mail (SMTP). Unset host: mail is written to the outbox folder in data_dir instead
    # (development); production refuses to start without a server.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout_seconds: float = Field(default=30, gt=0)
    # Temporary SMTP failures (4xx, 421, a relay that is down or times out) are retried
    # the way mail servers do, for days: the wait doubles from the first to the longest,
    # until the waits add up to the hours (then FAILED). 5xx fail at once.
    smtp_retry_first_seconds: float = Field(default=60, gt=0)
    smtp_retry_max_seconds: float = Field(default=30 * 60, gt=0)
    smtp_retry_hours: float = Field(default=72, gt=0, le=30 * 24)
    mail_from: str = "gameportal <no-reply@localhost>"
    password_reset_ttl_minutes: int = Field(default=30, ge=5, le=24 * 60)

    # Web Push (VAPID, RFC 8292). `gameportal vapid-keys` makes a key pair; unset, the
    # push routes answer 503 and PUSH messages fail with a clear lastError.
    vapid_private_key: str | None = None
    vapid_subject: str = "mailto:admin@localhost"
    # Push endpoints must be on these hosts (or their subdomains): the browsers' own
    # push services. Anything else would let a player aim the worker at any URL (SSRF).
    push_endpoint_hosts: list[str] = Field(
        default_factory=lambda: [
            "fcm.googleapis.com",
            "push.services.mozilla.com",
            "notify.windows.com",
            "push.apple.com",
        ]
    )
    push_allow_http: bool = False  # plain-HTTP endpoints, only for a local push service
    push_timeout_seconds: float = Field(default=10, gt=0)
    push_ttl_seconds: int = Field(default=24 * 3600, ge=0, le=28 * 24 * 3600)

    # Queue worker: on SIGTERM, how long running deliveries may take to finish; then they
    # are cancelled, their messages given back for a later try, and the worker exits.
    worker_shutdown_grace_seconds: float = Field(default=10, gt=0, le=3600)
    # An API process that starts while the database cannot be reached (an outage, a server
    # still starting) waits this long for it before giving up.
    startup_database_wait_seconds: float = Field(default=60, ge=0, le=3600)

    # Public content reads: cached in-process (dropped on any change, via NOTIFY), and
    # cacheable by browsers and CDNs for this long (then revalidated with the ETag).
    content_cache_entries: int = Field(default=20_000, ge=0)
    content_cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    content_max_age_seconds: int = Field(default=60, ge=0, le=86_400)

    # Leaderboards: each API process holds the boards read (rank lookups in memory), and
    # drops one nobody has read for this long; display names of ranked players are cached.
    leaderboard_idle_seconds: float = Field(default=3600, gt=0)
    leaderboard_name_cache_entries: int = Field(default=100_000, ge=0)

    # Live operations: each API process holds the live campaigns in memory, reloaded on
    # NOTIFY and read again every this many seconds anyway (a safety net); `gameportal
    # worker` brings players' personalized offers in step with campaign changes this often.
    liveops_resync_seconds: float = Field(default=60, gt=0, le=86_400)
    liveops_offers_seconds: float = Field(default=10, gt=0, le=86_400)

    # Progress: how long a game server's idempotency key is remembered (a retry after that
    # applies again), and how long each API process reuses a game's achievement unlock
    # counts (counting costs in proportion to its players).
    progress_idempotency_hours: float = Field(default=24, gt=0, le=24 * 365)
    achievement_stats_seconds: float = Field(default=10, ge=0, le=86_400)
    # Group commit of progress updates (service/batching.py): per API process, at most
    # this many written at once, each a statement of at most this many updates.
    progress_batches_in_flight: int = Field(default=4, ge=1, le=64)
    progress_batch_size: int = Field(default=64, ge=1, le=1000)

    # Media. Files live in a local folder (served by the app) or an S3 bucket (any
    # S3-compatible server); keys are made by the server, never from file names.
    media_storage: Literal["local", "s3"] = "local"
    # Unset: `media` in data_dir.
    media_dir: Path | None = None
    # Where media URLs point: unset, the app's own /api/v1/media/{id}/file route (local)
    # or the bucket's endpoint (S3); set it to a CDN in front of either.
    media_public_url: str | None = None
    media_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # Types accepted by their bytes (not their name); images get renditions.
    media_extra_types: list[str] = Field(default_factory=list)
    media_max_pixels: int = Field(default=40_000_000, ge=10_000)
    media_rendition_widths: list[int] = Field(default_factory=lambda: [320, 1280])
    media_upload_ttl_seconds: int = Field(default=900, ge=60, le=7 * 86_400)
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None

    # HTTP
    # On SIGTERM `gameportal serve` ends live notification streams at once (their clients
    # reconnect, to another instance) and gives other requests this long to finish; any
    # still running are then cancelled and the process exits.
    shutdown_timeout_seconds: int = Field(default=10, ge=1, le=3600)
    trusted_proxies: list[str] = Field(default_factory=list)
    max_json_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Slow clients (applied by `gameportal serve`, per API process): a client has this long
    # to send its request line and headers, and this long (plus a second for each
    # body_min_rate_bytes it sends) for its body; past the connection limit, new
    # connections are answered 503 at once.
    header_timeout_seconds: float = Field(default=10, gt=0, le=3600)
    body_timeout_seconds: float = Field(default=20, gt=0, le=3600)
    body_min_rate_bytes: int = Field(default=16 * 1024, ge=1)
    max_connections: int = Field(default=1000, ge=1)
    # Bearer token that /metrics asks for; unset, /metrics answers 404.
    metrics_token: str | None = Field(default=None, min_length=16)
    cors_origins: list[str] = Field(default_factory=list)
    # Browser session mode's refresh cookie is `Secure` (sent over HTTPS only, and over
    # http://localhost by browsers); false lets a plain-HTTP development host use it.
    # Refused in production.
    cookie_secure: bool = True
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stderr is a terminal

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value

    @field_validator(
        "verify_email_url_template", "reset_password_url_template", "unsubscribe_url_template"
    )
    @classmethod
    def _link_template(cls, value: str | None) -> str | None:
        if value is not None and (
            value.count("{token}") != 1 or not value.startswith(("https://", "http://"))
        ):
            raise ValueError("must be an http(s) URL with `{token}` in it once")
        return value

    # Where the secret key came from, when it was not given: the data folder's key file.
    _secret_key_file: Path | None = PrivateAttr(default=None)

    @property
    def secret_key_file(self) -> Path | None:
        """The data folder's generated key file, when that is the key in use."""
        return self._secret_key_file

    def with_secret_key(self) -> Settings:
        """These settings with a secret key: the one given, or (outside production) the
        data folder's, made on first use. Only what signs or verifies asks for it (the
        API, the queue worker, `serve`): a command that needs no key, run in the wrong
        folder, leaves no data folder behind."""
        if self.secret_key:
            return self
        resolved = self.model_copy(update={"secret_key": data_dir_secret_key(self.data_dir)})
        resolved._secret_key_file = self.data_dir / SECRET_KEY_FILE
        return resolved

    @model_validator(mode="after")
    def _production_guard(self) -> Settings:
        if self.secret_key in PUBLIC_SECRET_KEYS:
            raise ValueError(
                "GAMEPORTAL_SECRET_KEY is a published development key that anyone can sign "
                "tokens with; set a random value, or unset it to have one generated"
            )
        if not self.secret_key:
            if self.env == "production":
                # A key made here would differ on every machine and vanish with a fresh
                # data folder: production takes its key from the deployment.
                raise ValueError(
                    "GAMEPORTAL_SECRET_KEY must be set in production (a random value of at "
                    f"least {MIN_SECRET_LENGTH} characters, the same on every instance; "
                    "a generated data-folder key is only used outside production)"
                )
        elif self.env == "production" and len(self.secret_key) < MIN_SECRET_LENGTH:
            raise ValueError(
                "GAMEPORTAL_SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_LENGTH} characters in production"
            )
        if self.env == "production" and not self.smtp_host:
            raise ValueError(
                "GAMEPORTAL_SMTP_HOST must name a mail server in production (without one, "
                "mail only goes to the development outbox)"
            )
        if self.env == "production" and not self.cookie_secure:
            raise ValueError(
                "GAMEPORTAL_COOKIE_SECURE=false is only for plain-HTTP development: in "
                "production the refresh cookie must travel over HTTPS alone"
            )
        if self.session_idle_days > self.session_ttl_days:
            raise ValueError(
                "GAMEPORTAL_SESSION_IDLE_DAYS cannot exceed GAMEPORTAL_SESSION_TTL_DAYS"
            )
        if self.media_storage == "s3" and not self.s3_bucket:
            raise ValueError("GAMEPORTAL_MEDIA_STORAGE=s3 needs GAMEPORTAL_S3_BUCKET")
        if self.vapid_private_key:
            # A bad key or subject is found at start-up, not at the first push.
            from gameportal.notifications.vapid import VapidSigner

            VapidSigner(self.vapid_private_key, self.vapid_subject)
        return self

    @property
    def embedded_pgdata(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def outbox_dir(self) -> Path:
        """Where mail goes while no SMTP server is configured."""
        return self.data_dir / "outbox"

    @property
    def media_folder(self) -> Path:
        return self.media_dir or self.data_dir / "media"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, with its secret key (Settings.with_secret_key)."""
    return Settings().with_secret_key()
