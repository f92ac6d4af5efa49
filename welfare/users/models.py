from __future__ import annotations

import datetime as dt
import re
import uuid

from pydantic import field_validator
from sqlalchemy import BigInteger, Enum, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from welfare.authz import Role
from welfare.db import UTCDateTime, utcnow

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
PASSWORD_MIN = 10
PASSWORD_MAX = 256
UI_LANGUAGES = ("en", "zh-CN", "ko-KR")


def _check_username(value: str) -> str:
    value = value.strip().lower()
    if not USERNAME_PATTERN.match(value):
        raise ValueError("2-63 characters: lower-case letters, digits, '.', '_' or '-'")
    return value


def _check_display_name(value: str) -> str:
    # Control characters (NUL above all, which PostgreSQL cannot store) are never part of a name.
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    return value


# Deliberately loose: one "@", no spaces, a dot in the domain. Whether mail arrives is the
# identity provider's business; this only keeps typing slips out of the match.
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
EMAIL_MAX = 254


def normalise_email(value: str | None) -> str | None:
    """An e-mail as stored and matched: trimmed, lower-case; blank means none."""
    if value is None or not value.strip():
        return None
    value = value.strip().lower()
    if len(value) > EMAIL_MAX or not EMAIL_PATTERN.match(value):
        raise ValueError("an e-mail address such as name@example.com")
    return value


def _check_language(value: str) -> str:
    if value not in UI_LANGUAGES:
        raise ValueError(f"one of {', '.join(UI_LANGUAGES)}")
    return value


class UserBase(SQLModel):
    username: str = Field(max_length=63)
    display_name: str = Field(min_length=1, max_length=200)
    role: Role
    language: str = Field(default="en", max_length=16)
    phone: str | None = Field(default=None, max_length=32)
    # Optional; unique when set. Company sign-in matches a verified e-mail to it once.
    email: str | None = Field(default=None, max_length=EMAIL_MAX)
    is_active: bool = True


class UserCreate(UserBase):
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)
    site_ids: list[uuid.UUID] = Field(default_factory=list, max_length=500)

    @field_validator("username")
    @classmethod
    def _valid_username(cls, value: str) -> str:
        return _check_username(value)

    @field_validator("display_name")
    @classmethod
    def _valid_display_name(cls, value: str) -> str:
        return _check_display_name(value)

    @field_validator("language")
    @classmethod
    def _valid_language(cls, value: str) -> str:
        return _check_language(value)

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str | None) -> str | None:
        return normalise_email(value)


class UserUpdate(SQLModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    language: str | None = Field(default=None, max_length=16)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=EMAIL_MAX)
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)
    site_ids: list[uuid.UUID] | None = Field(default=None, max_length=500)

    @field_validator("language")
    @classmethod
    def _valid_language(cls, value: str | None) -> str | None:
        return None if value is None else _check_language(value)

    @field_validator("display_name")
    @classmethod
    def _valid_display_name(cls, value: str | None) -> str | None:
        return None if value is None else _check_display_name(value)

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str | None) -> str | None:
        # "" clears the e-mail, as null does; only an absent field leaves it alone.
        return normalise_email(value)


class ProfileUpdate(SQLModel):
    """What users may change about themselves."""

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    language: str | None = Field(default=None, max_length=16)
    phone: str | None = Field(default=None, max_length=32)

    @field_validator("language")
    @classmethod
    def _valid_language(cls, value: str | None) -> str | None:
        return None if value is None else _check_language(value)

    @field_validator("display_name")
    @classmethod
    def _valid_display_name(cls, value: str | None) -> str | None:
        return None if value is None else _check_display_name(value)


class PasswordChange(SQLModel):
    current_password: str = Field(max_length=PASSWORD_MAX)
    new_password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)


class User(UserBase, table=True):
    __tablename__ = "user_account"

    role: Role = Field(sa_type=Enum(Role, native_enum=False, length=20))
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    username: str = Field(max_length=63, unique=True)
    email: str | None = Field(default=None, max_length=EMAIL_MAX, unique=True, index=True)
    password_hash: str = Field(max_length=512)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    password_changed_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Guards on duty get missing-resident alerts; the manager on duty gets escalations.
    on_duty_since: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # TOTP (welfare.users.second_factor): the seed sealed (welfare.sealed), set when enrolment
    # starts; enabled once a first code confirmed it. The last time step used, so that a code
    # is accepted once.
    totp_secret_sealed: str | None = Field(default=None, max_length=512)
    totp_enabled_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    totp_last_step: int | None = Field(default=None, sa_type=BigInteger)


class UserSite(SQLModel, table=True):
    __tablename__ = "user_site"

    user_id: uuid.UUID = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    site_id: uuid.UUID = Field(
        foreign_key="site.id", primary_key=True, index=True, ondelete="CASCADE"
    )


class UserPublic(UserBase):
    id: uuid.UUID
    site_ids: list[uuid.UUID]
    created_at: dt.datetime
    on_duty_since: dt.datetime | None = None
    second_factor_enabled: bool = False


class DutyChange(SQLModel):
    on_duty: bool


class AuthSession(SQLModel, table=True):
    """A sign-in. Only a hash of the token is stored; revoking sets `revoked_at`."""

    __tablename__ = "auth_session"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime)
    last_seen_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    client_addr: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)
    # How the sign-in proved a second factor: None (password only), "totp", "recovery",
    # "passkey", "device_pin" or "company" (session_rules.SECOND_FACTORS).
    second_factor: str | None = Field(default=None, max_length=20)


class RecoveryCode(SQLModel, table=True):
    """A one-time code for signing in without the authenticator; only its hash is stored."""

    __tablename__ = "recovery_code"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    code_hash: str = Field(max_length=64)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class SignInChallenge(SQLModel, table=True):
    """A password checked, a second factor still to come: what the pending sign-in token
    names. It opens no session by itself and is used up by the sign-in it completes."""

    __tablename__ = "sign_in_challenge"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
    used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class SecondFactorStatus(SQLModel):
    """Whether a user has TOTP, how many recovery codes are left, and whether it is required."""

    enabled: bool
    enabled_at: dt.datetime | None
    recovery_codes_left: int
    required: bool


class SessionPublic(SQLModel):
    """A sign-in as its owner (or an admin) sees it: never the token hash."""

    id: uuid.UUID
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    device: str | None  # "Firefox · Android", from the User-Agent at sign-in
    client_addr: str | None
    current: bool  # the session making this request


class LoginFailure(SQLModel, table=True):
    """Failed sign-ins, counted per account and per client address for throttling."""

    __tablename__ = "login_failure"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=256, index=True)
    client_addr: str = Field(max_length=64, index=True)
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class TokenResponse(SQLModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: dt.datetime


class SharedDevice(SQLModel, table=True):
    """A phone that guards share across shifts, known by a long random token in a cookie (only
    its hash is stored). Quick sign-in with a PIN works only on the device it was set up on."""

    __tablename__ = "shared_device"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    user_agent: str | None = Field(default=None, max_length=300)


class DevicePin(SQLModel, table=True):
    """One guard's PIN on one shared device: set after a full sign-in there, revocable, and
    locked after a few wrong tries (then only a full sign-in sets it again)."""

    __tablename__ = "device_pin"
    __table_args__ = (UniqueConstraint("device_id", "user_id", name="uq_device_pin_device_user"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    device_id: uuid.UUID = Field(foreign_key="shared_device.id", index=True, ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    pin_hash: str = Field(max_length=512)
    failures: int = 0
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class DevicePinPublic(SQLModel):
    """A quick sign-in as its owner (or an admin) sees it: never the PIN's hash."""

    id: uuid.UUID
    device: str | None  # "Chrome · Android", from the User-Agent when it was set up
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    this_device: bool


class PinSetup(SQLModel):
    pin: str = Field(min_length=6, max_length=8)
    current_password: str = Field(min_length=1, max_length=256)


PASSKEY_NAME_MAX = 60


class Passkey(SQLModel, table=True):
    """A WebAuthn credential a user registered: only its public key, never a secret."""

    __tablename__ = "passkey"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    # base64url of the authenticator's credential id (at most 1023 bytes by the spec).
    credential_id: str = Field(max_length=1400, unique=True)
    public_key: bytes = Field(sa_type=LargeBinary)  # COSE_Key, as the authenticator sent it
    # Authenticators count in 32 bits unsigned: more than PostgreSQL's integer holds.
    sign_count: int = Field(default=0, sa_type=BigInteger)
    transports: str | None = Field(default=None, max_length=200)  # "internal,hybrid"
    aaguid: str = Field(max_length=36)
    backed_up: bool = False  # synced to the user's other devices (a cloud keychain)
    name: str = Field(max_length=PASSKEY_NAME_MAX)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class PasskeyPublic(SQLModel):
    """A passkey as its owner (or an admin) sees it: never the key or the credential id."""

    id: uuid.UUID
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    transports: list[str]
    backed_up: bool


class WebAuthnChallenge(SQLModel, table=True):
    """A challenge handed to a browser, kept (hashed) until it is answered once or expires.

    `binding_hash` ties it to who asked: the signed-in session for a registration, the sign-in
    page's CSRF cookie for a sign-in, so a challenge taken from one browser fails in another.
    """

    __tablename__ = "webauthn_challenge"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    challenge_hash: str = Field(max_length=64, unique=True)
    purpose: str = Field(max_length=20)  # "register" | "sign_in"
    binding_hash: str = Field(max_length=64, index=True)
    user_id: uuid.UUID | None = Field(
        default=None, foreign_key="user_account.id", ondelete="CASCADE"
    )
    client_addr: str = Field(max_length=64)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
