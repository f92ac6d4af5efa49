"""Settings from `WELFARE_*` environment variables (and an optional `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Shipped so the demo works out of the box; `ensure_safe_for_serving` refuses it elsewhere.
DEFAULT_SECRET_KEY = "insecure-demo-secret-change-me"
TWILIO_DEFAULT_API_BASE_URL = "https://api.twilio.com"
ALIYUN_DEFAULT_ENDPOINT = "dysmsapi.aliyuncs.com"
# The languages an Aliyun template code is given for (notifications/messages.py's LANGUAGES).
ALIYUN_TEMPLATE_LANGUAGES = ("en", "zh-CN", "ko-KR")


class UnsafeSettingsError(RuntimeError):
    """Raised when settings are acceptable for the demo but not for real service."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WELFARE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./welfare.db"
    secret_key: str = DEFAULT_SECRET_KEY
    public_base_url: str = "http://127.0.0.1:8000"
    media_dir: Path = Path("./media")

    session_ttl_hours: int = Field(default=12, ge=1, le=24 * 30)
    # A session unused this long is signed out: short for office staff and above, long for
    # guards on patrol (their phone sits in a pocket between rounds).
    idle_timeout_minutes_staff: int = Field(default=30, ge=1, le=24 * 60 * 30)
    idle_timeout_minutes_guard: int = Field(default=12 * 60, ge=1, le=24 * 60 * 30)
    login_window_minutes: int = Field(default=15, ge=1)
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)

    max_photo_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    photo_max_side: int = Field(default=1600, ge=64)
    thumbnail_side: int = Field(default=256, ge=32)
    # A photo a guard took on an incident is deleted this many days after the incident closes
    # (0: at the next housekeeping round after closing), and at once on consent withdrawal.
    incident_photo_retention_days: int = Field(default=30, ge=0, le=3650)

    # Provider requests in flight at once: each takes the provider's answer time (~0.1-0.2 s
    # for Twilio), so a burst of reports (two rows each) should go out in one wave. Twilio
    # answers 429/20429 to an account with too many requests open: lower it then.
    dispatch_concurrency: int = Field(default=32, ge=1, le=100)

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str = TWILIO_DEFAULT_API_BASE_URL
    # WhatsApp through Twilio: the sender ("whatsapp:+14155238886"), and the approved templates
    # a business needs to start a conversation: per outbox template, the Content SID per
    # language and which of the text's fields fill {{1}}, {{2}}...:
    # {"found_alert": {"content_sid": {"en": "HX...", "zh-CN": "HX..."},
    #                  "variables": ["site_name", "reference", "link"]}}
    twilio_whatsapp_from: str | None = None
    twilio_whatsapp_templates: str = "{}"

    # Alibaba Cloud SMS for mainland-China numbers (docs/aliyun.md): on when the key pair and
    # the sign name are set. The endpoint is a host (https) or an http(s):// URL (a local fake).
    aliyun_access_key_id: str | None = None
    aliyun_access_key_secret: str | None = None
    aliyun_sign_name: str | None = None
    aliyun_endpoint: str = ALIYUN_DEFAULT_ENDPOINT
    # Per outbox template and language, the approved Aliyun TemplateCode, as JSON:
    # {"found_alert": {"zh-CN": "SMS_123", "en": "SMS_124"}, ...}
    aliyun_templates: dict[str, dict[str, str]] = Field(default_factory=dict)
    # How often delivery reports are fetched (QuerySendDetails) for SMS without a final status.
    aliyun_report_poll_seconds: float = Field(default=60.0, ge=5, le=3600)

    # Web push (docs/web-push.md). Without keys here the service makes a pair at first start and
    # keeps it in the database (the private key sealed), so every process signs with the same.
    vapid_private_key: str | None = None  # base64url of the raw 32-byte P-256 private key
    vapid_public_key: str | None = None  # base64url of the uncompressed public point
    # Who runs the service, for push services to write to: "mailto:..." or "https://...".
    # Unset: the public base URL when it is https, else a mailto at the service's host.
    vapid_subject: str | None = None
    # How long a push service keeps an alert for a phone that is offline before dropping it.
    push_ttl_seconds: int = Field(default=900, ge=0, le=24 * 3600)
    # The push services a phone's subscription may point at (host, or ".suffix" for any of its
    # subdomains): the worker posts to the endpoint a signed-in user gives, so only these.
    push_service_hosts: str = (
        "fcm.googleapis.com,updates.push.services.mozilla.com,.push.apple.com,.notify.windows.com"
    )

    # None: decided by the database (on for SQLite, off otherwise).
    run_worker_in_process: bool | None = None
    # The console channel's unanswered call rings this long before "no answer" (a real phone
    # rings about 25 s): the demo then moves to the next contact as it would with a family.
    console_call_ring_seconds: float = Field(default=25.0, ge=0.5, le=120)
    # /readyz fails when no worker heartbeat is newer than this (a separate `welfare worker`).
    worker_heartbeat_max_age_seconds: float = Field(default=30.0, gt=0)
    # `welfare worker` serves its own /metrics on this port when set (0 or unset: off).
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)

    # When set, GET /metrics wants `Authorization: Bearer <token>`; unset, it is open (it holds
    # no personal data, but does show load and queue figures: keep it off the public internet).
    metrics_token: str | None = None
    # Outbound messages per second per sender (from-number or messaging service), across all
    # workers; 0 turns the limit off. See notifications/ratelimit.py.
    outbox_max_per_second: float = Field(default=10.0, ge=0)
    # Limits per recipient (welfare/outbox/limits.py; 0 turns one off): messages that are not
    # about an incident go to one number at most `recipient_limit` times per
    # `recipient_limit_minutes` (the rest wait); the same text goes to one number once within
    # `identical_text_hours` (the repeat is held back: mainland carriers reject the third).
    recipient_limit: int = Field(default=5, ge=0)
    recipient_limit_minutes: int = Field(default=15, ge=1, le=24 * 60)
    identical_text_hours: int = Field(default=24, ge=0, le=24 * 30)
    # Which proxies may set X-Forwarded-For/-Proto for `welfare serve` (uvicorn's
    # forwarded_allow_ips: comma-separated addresses or "*").
    forwarded_allow_ips: str = "127.0.0.1"
    log_level: str = "INFO"
    # Which providers carry messages to which destinations, tried in order: calling-code
    # prefixes, e.g. "+86=aliyun,twilio;+852=twilio" (any other number: the default provider
    # of its channel kind). A provider that fails a message for good (or reports it
    # undelivered) hands it once to the next of its route. See notifications/routes.py.
    routes: str = ""

    @field_validator("twilio_whatsapp_from")
    @classmethod
    def _whatsapp_sender(cls, value: str | None) -> str | None:
        if value and not value.startswith("whatsapp:+"):
            raise ValueError("give the WhatsApp sender as whatsapp:+ and its number in E.164")
        return value

    @field_validator("twilio_whatsapp_templates")
    @classmethod
    def _whatsapp_templates(cls, value: str) -> str:
        from welfare.whatsapp_templates import parse_templates

        parse_templates(value)  # a wrong table stops the start, in words
        return value

    @field_validator("routes")
    @classmethod
    def _routes_parse(cls, value: str) -> str:
        from welfare.route_table import parse_routes

        parse_routes(value)  # a wrong table stops the start, in words
        return value

    @field_validator("public_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("aliyun_templates")
    @classmethod
    def _known_template_languages(
        cls, value: dict[str, dict[str, str]]
    ) -> dict[str, dict[str, str]]:
        for template, codes in value.items():
            for language, code in codes.items():
                if language not in ALIYUN_TEMPLATE_LANGUAGES:
                    raise ValueError(
                        f"WELFARE_ALIYUN_TEMPLATES: {template} has a code for {language!r}; the "
                        f"languages are {', '.join(ALIYUN_TEMPLATE_LANGUAGES)}"
                    )
                if not code.strip():
                    raise ValueError(
                        f"WELFARE_ALIYUN_TEMPLATES: {template} in {language} has an empty code"
                    )
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def twilio_configured(self) -> bool:
        return bool(
            self.twilio_account_sid
            and self.twilio_auth_token
            and (self.twilio_from_number or self.twilio_messaging_service_sid)
        )

    @property
    def aliyun_configured(self) -> bool:
        return bool(
            self.aliyun_access_key_id and self.aliyun_access_key_secret and self.aliyun_sign_name
        )

    @property
    def channel_name(self) -> str:
        return "twilio" if self.twilio_configured else "console"

    @property
    def worker_in_process(self) -> bool:
        if self.run_worker_in_process is None:
            return self.is_sqlite
        return self.run_worker_in_process

    @property
    def cookie_secure(self) -> bool:
        return self.public_base_url.startswith("https://")

    def ensure_safe_for_serving(self) -> None:
        """Refuse to serve real users with settings only meant for the demo."""
        if self.secret_key == DEFAULT_SECRET_KEY:
            raise UnsafeSettingsError(
                "WELFARE_SECRET_KEY is the built-in demo value; set it to a long random string "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))'). "
                "Only `welfare demo` may run with the default."
            )
        if len(self.secret_key) < 32:
            raise UnsafeSettingsError("WELFARE_SECRET_KEY must be at least 32 characters long.")


@lru_cache
def get_settings() -> Settings:
    return Settings()
