"""Who may do what, checked inside the services so no route can forget it.

Roles are cumulative (guard < staff < manager < admin) and every user is scoped to the sites they
belong to. Admins manage users and sites everywhere, but read the registry only of sites they
belong to: health data is not an administrator's business by default.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from welfare.errors import NotFound, PermissionDenied


class Role(StrEnum):
    guard = "guard"
    staff = "staff"
    manager = "manager"
    admin = "admin"


class Permission(StrEnum):
    guard_ops = "guard_ops"  # lookup, report found, follow incidents, missing alerts
    registry_read = "registry_read"
    registry_write = "registry_write"
    reports_read = "reports_read"
    audit_read = "audit_read"
    escalation_policy = "escalation_policy"
    visits_schedule = "visits_schedule"  # create and change welfare-visit schedules
    users_manage = "users_manage"
    sites_manage = "sites_manage"


_GUARD = {Permission.guard_ops}
_STAFF = _GUARD | {Permission.registry_read, Permission.registry_write}
_MANAGER = _STAFF | {
    Permission.reports_read,
    Permission.audit_read,
    Permission.escalation_policy,
    Permission.visits_schedule,
}
_ADMIN = _MANAGER | {Permission.users_manage, Permission.sites_manage}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.guard: frozenset(_GUARD),
    Role.staff: frozenset(_STAFF),
    Role.manager: frozenset(_MANAGER),
    Role.admin: frozenset(_ADMIN),
}

# Permissions that reach every site regardless of membership.
_GLOBAL_PERMISSIONS = {Permission.users_manage, Permission.sites_manage}


@dataclass(frozen=True)
class Actor:
    """The person (or system process) on whose behalf a service call runs."""

    user_id: uuid.UUID | None
    role: Role
    site_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)
    client_addr: str | None = None
    session_id: uuid.UUID | None = None
    # Signed in with a password only, by a user who must have a second factor and has none
    # yet: this session may set one up and sign out, nothing else (the API and pages refuse).
    enrolment_only: bool = False

    @classmethod
    def system(cls) -> Actor:
        """The CLI, the worker and the scheduler: every permission, every site."""
        return cls(user_id=None, role=Role.admin, site_ids=frozenset())

    @property
    def is_system(self) -> bool:
        return self.user_id is None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def in_site(self, site_id: uuid.UUID) -> bool:
        return self.is_system or site_id in self.site_ids


def require(actor: Actor, permission: Permission) -> None:
    if not actor.can(permission):
        raise PermissionDenied(f"the {actor.role} role may not do this ({permission})")


def require_site(actor: Actor, permission: Permission, site_id: uuid.UUID, entity: str) -> None:
    """Check the permission, then the site. Another site's records look as if absent (404)."""
    require(actor, permission)
    if permission in _GLOBAL_PERMISSIONS or actor.in_site(site_id):
        return
    raise NotFound(entity)


def visible_site_ids(actor: Actor, permission: Permission) -> frozenset[uuid.UUID] | None:
    """Sites whose records a list may show; None means every site."""
    require(actor, permission)
    if actor.is_system or permission in _GLOBAL_PERMISSIONS:
        return None
    return actor.site_ids
