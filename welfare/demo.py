"""The demo data: the brief's case (Mr. Wang in 1-1609, Mrs. Park in A-14) and a few more."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlmodel import Session, select

from welfare.authz import Actor, Role
from welfare.consent.models import ConsentCreate, ConsentScope
from welfare.consents import record_consent
from welfare.demo_history import seed_history
from welfare.demo_portraits import add_portraits
from welfare.residents import service as residents
from welfare.residents.models import ContactCreate, ResidentCreate, WanderingEntry
from welfare.settings import Settings
from welfare.sites import service as sites
from welfare.sites.models import HouseholdCreate, Site, SiteCreate
from welfare.tags.service import issue_tag
from welfare.users import service as users
from welfare.users.models import User, UserCreate

DEMO_SITE_NAME = "Harbour View Gardens (demo)"


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: Role
    display_name: str
    phone: str | None = None  # guards and managers get alerts by SMS


DEMO_USERS = (
    DemoUser("guard", "guard-demo-1609", Role.guard, "Lam Ka-ho (patrol guard)", "9345 1609"),
    DemoUser("staff", "staff-demo-1609", Role.staff, "Joyce Ng (office staff)"),
    DemoUser("manager", "manager-demo-1609", Role.manager, "Peter Ho (duty manager)", "9456 1609"),
    DemoUser("admin", "admin-demo-1609", Role.admin, "Ada Admin"),
)


def seed_demo(
    session: Session, now: dt.datetime | None = None, settings: Settings | None = None
) -> tuple[Site, bool]:
    """Create the demo site, residents and users once, and their past visits and incidents
    (welfare.demo_history) once; with `settings` (where photos are stored), an illustrated
    portrait for each resident without a photo (welfare.demo_portraits). Returns (site,
    created_now)."""
    existing = session.exec(select(Site).where(Site.name == DEMO_SITE_NAME)).first()
    if existing:
        # A demo made before the history and the portraits gets them now.
        seed_history(session, existing, now)
        if settings is not None:
            add_portraits(session, existing, settings)
        return existing, False
    system = Actor.system()
    site = sites.create_site(
        session=session,
        actor=system,
        data=SiteCreate(
            name=DEMO_SITE_NAME,
            timezone="Asia/Hong_Kong",
            phone_region="HK",
            office_phone="2345 6789",
            address="1 Harbour Road, Hong Kong",
            # The demo is tried without an authenticator app; a real site requires one.
            require_second_factor_staff=False,
        ),
    )
    for user in DEMO_USERS:
        users.create_user(
            session=session,
            actor=system,
            data=UserCreate(
                username=user.username,
                display_name=user.display_name,
                role=user.role,
                password=user.password,
                site_ids=[site.id],
                phone=user.phone,
            ),
        )

    def household(building: str, unit: str, landline: str | None = None):
        return sites.create_household(
            session=session,
            actor=system,
            data=HouseholdCreate(site_id=site.id, building=building, unit=unit, landline=landline),
        )

    def resident(data: dict, contacts: list[dict], consent: dict | None = None) -> None:
        created = residents.create_resident(
            session=session, actor=system, data=ResidentCreate(**data)
        )
        for contact in contacts:
            residents.create_contact(
                session=session,
                actor=system,
                resident_id=created.id,
                data=ContactCreate(**contact),
            )
        # Without a lost-person consent a guard could neither find nor report the resident.
        given = {
            "given_by_kind": "resident",
            "given_by_name": data["full_name"],
            "method": "written",
            "scopes": list(ConsentScope),
        } | (consent or {})
        record_consent(
            session=session, actor=system, resident_id=created.id, data=ConsentCreate(**given)
        )
        issue_tag(session=session, actor=system, resident_id=created.id)

    wang_home = household("1", "1609", landline="2888 1609")
    resident(
        {
            "household_id": wang_home.id,
            "full_name": "Wang Jianguo",
            "preferred_name": "Mr. Wang",
            "aliases": ["王建国", "Old Wang"],
            "birth_year": 1941,
            "sex": "male",
            "languages": ["zh-CN"],
            "height_cm": 168,
            "build": "slim, slightly stooped",
            "hair": "white, short",
            "eyes": "brown, wears glasses",
            "clothing": "often a grey padded coat and slippers",
            "distinguishing_marks": "mole under the left eye",
            "walking_aid": "walking stick with a red handle",
            "care_needs": "Dementia (moderate). Needs supervision outdoors.",
            "medical_notes": "Alzheimer's disease; on donepezil. Diabetic.",
            "approach": "Speak Mandarin slowly. Calm him by talking about his grandson Xiaoming.",
            "places": ["third-floor meter-box door", "the old bus stop on Harbour Road"],
            "routines": "Walks to the garden after lunch.",
            "risk_level": "high",
            "wandering_history": [
                WanderingEntry(
                    occurred_on=dt.date(2026, 9, 14),
                    location="Building 1, 3/F stairwell, knocking on the meter-box door",
                    note="Thought it was his flat.",
                ).model_dump(mode="json")
            ],
        },
        [
            {"name": "Wang Lei", "relationship": "son", "phone": "9123 4567", "language": "zh-CN"},
            {
                "name": "Wang Mei",
                "relationship": "daughter",
                "phone": "6123 4567",
                "language": "zh-CN",
            },
        ],
        consent={
            "given_by_kind": "attorney",
            "given_by_name": "Wang Lei",
            "given_by_relationship": "son, lasting power of attorney",
        },
    )

    park_home = household("A", "14")
    resident(
        {
            "household_id": park_home.id,
            "full_name": "Park Soon-ja",
            "preferred_name": "Mrs. Park",
            "aliases": ["박순자"],
            "birth_year": 1962,
            "sex": "female",
            "languages": ["ko-KR"],
            "height_cm": 155,
            "hair": "short, dyed brown",
            "clothing": "usually a purple cardigan",
            "care_needs": "Speaks little Cantonese or English; lives alone.",
            "approach": "Greet her in Korean (annyeonghaseyo); show her the translated card.",
            "places": ["the Korean grocery on Harbour Road", "garden bench by Building A"],
            "risk_level": "medium",
        },
        [
            {
                "name": "Kim Ji-hoon",
                "relationship": "son (works in Seoul)",
                "phone": "+82 10-1234-5678",
                "language": "ko-KR",
                "can_collect": False,
            },
            {
                "name": "Kim Soo-min",
                "relationship": "daughter (works in San Francisco)",
                "phone": "+1 415-555-0123",
                "language": "ko-KR",
                "can_collect": False,
            },
        ],
    )

    chan_home = household("2", "803")
    resident(
        {
            "household_id": chan_home.id,
            "full_name": "Chan Tai-man",
            "preferred_name": "Uncle Chan",
            "aliases": ["陳大文"],
            "birth_year": 1938,
            "sex": "male",
            "languages": ["yue-HK", "zh-CN"],
            "hair": "grey, thinning",
            "clothing": "blue checked shirt",
            "distinguishing_marks": "hearing aid in the right ear",
            "walking_aid": "blue wheelchair",
            "care_needs": "Wheelchair user; hard of hearing.",
            "approach": "Speak Cantonese, loudly and facing him.",
            "places": ["lift lobby of Building 2"],
            "risk_level": "low",
        },
        [
            {
                "name": "Chan Siu-ling",
                "relationship": "daughter",
                "phone": "9876 5432",
                "language": "zh-CN",
                "lives_in_household": True,
            }
        ],
    )

    lee_home = household("1", "402")
    resident(
        {
            "household_id": lee_home.id,
            "full_name": "Margaret Lee",
            "preferred_name": "Maggie",
            "birth_year": 1945,
            "sex": "female",
            "languages": ["en-GB"],
            "hair": "grey, in a bun",
            "clothing": "beige raincoat",
            "care_needs": "Early-stage dementia.",
            "approach": "Ask about her garden; she likes roses.",
            "places": ["rose beds by the main gate"],
            "risk_level": "medium",
        },
        [
            {
                "name": "David Lee",
                "relationship": "son",
                "phone": "5123 4567",
                "language": "en-GB",
                "quiet_hours_start": dt.time(23, 0),
                "quiet_hours_end": dt.time(7, 0),
            }
        ],
    )
    seed_history(session, site, now)
    if settings is not None:
        add_portraits(session, site, settings)
    return site, True


def demo_users_exist(session: Session) -> bool:
    names = [u.username for u in DEMO_USERS]
    return len(session.exec(select(User).where(User.username.in_(names))).all()) == len(names)  # type: ignore[attr-defined]
