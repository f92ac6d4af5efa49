"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from sqlmodel import SQLModel

from welfare.audit.models import AuditEntry
from welfare.consent.models import Consent
from welfare.heartbeat.models import WorkerHeartbeat
from welfare.identity.models import (
    IdentityProvider,
    IdentityProviderSite,
    OidcLogin,
    UserIdentity,
)
from welfare.incidents.answer_links import AnswerLink
from welfare.incidents.models import (
    EscalationPolicy,
    Incident,
    IncidentEvent,
    IncidentResponder,
    PublicReport,
)
from welfare.lookup.models import (
    LookupEntry,
    LookupName,
    LookupToken,
    LookupVariant,
    LookupWord,
)
from welfare.outbox.models import OutboxMessage, RecipientAllowance, RecipientText
from welfare.push.models import PushSubscription, VapidKey
from welfare.residents.models import Contact, ContactTestLink, Resident
from welfare.sites.models import Household, Site
from welfare.tags.models import ResidentTag
from welfare.users.models import (
    AuthSession,
    LoginFailure,
    Passkey,
    RecoveryCode,
    SignInChallenge,
    User,
    UserSite,
    WebAuthnChallenge,
)
from welfare.visits.models import CalendarToken, JobMark, Visit, VisitSchedule
from welfare.webhooks.models import WebhookReceipt

metadata = SQLModel.metadata

__all__ = [
    "AnswerLink",
    "AuditEntry",
    "AuthSession",
    "CalendarToken",
    "Consent",
    "Contact",
    "ContactTestLink",
    "EscalationPolicy",
    "Household",
    "IdentityProvider",
    "IdentityProviderSite",
    "Incident",
    "IncidentEvent",
    "IncidentResponder",
    "JobMark",
    "LoginFailure",
    "LookupEntry",
    "LookupName",
    "LookupToken",
    "LookupVariant",
    "LookupWord",
    "OidcLogin",
    "OutboxMessage",
    "Passkey",
    "PublicReport",
    "PushSubscription",
    "RecipientAllowance",
    "RecipientText",
    "RecoveryCode",
    "Resident",
    "ResidentTag",
    "SignInChallenge",
    "Site",
    "User",
    "UserIdentity",
    "UserSite",
    "VapidKey",
    "Visit",
    "VisitSchedule",
    "WebAuthnChallenge",
    "WebhookReceipt",
    "WorkerHeartbeat",
    "metadata",
]
