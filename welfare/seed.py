"""Fast bulk seeding for benchmarks: `welfare seed --residents N`.

Rows go in with executemany in batches and one summary audit entry, not one service call per
resident: seeding 100,000 residents must take seconds, not hours.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator

from sqlalchemy import insert
from sqlmodel import Session, select

from welfare.audit.service import record as audit_record
from welfare.authz import Actor
from welfare.consent.models import Consent
from welfare.db import utcnow
from welfare.lookup import index as lookup_index
from welfare.residents.models import Contact, Resident
from welfare.sites.models import Household, Site

BENCH_SITE_NAME = "Benchmark Compound"
BATCH = 5000

SURNAMES = [
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Chan",
    "Wong",
    "Lee",
    "Park",
    "Kim",
    "Choi",
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Ho",
    "Lam",
    "Ng",
    "Cheung",
    "Yeung",
    "Tan",
]
GIVEN = [
    "Wei",
    "Fang",
    "Jun",
    "Min",
    "Hui",
    "Ying",
    "Soon-ja",
    "Ji-hoon",
    "Mei",
    "Lei",
    "Margaret",
    "David",
    "Susan",
    "George",
    "Ka-ho",
    "Siu-ling",
    "Tai-man",
    "Xiu",
    "Hong",
]
HANZI = ["王", "李", "张", "刘", "陈", "黄", "林", "何", "吴", "郑"]
HANZI_GIVEN = ["建国", "秀英", "伟", "芳", "敏", "静", "丽", "强", "磊", "军"]
HANGUL = ["박순자", "김민준", "이서연", "최지훈", "정하은"]
CLOTHES = [
    "grey coat",
    "blue jacket",
    "red scarf",
    "beige raincoat",
    "purple cardigan",
    "black cap",
    "green jumper",
    "white shirt",
    "brown slippers",
    "yellow umbrella",
]
MARKS = ["walking stick", "wheelchair", "hearing aid", "glasses", "limp", "scar on left hand"]
LANGUAGES = [["zh-CN"], ["yue-HK", "zh-CN"], ["ko-KR"], ["en-GB"], ["zh-CN", "en-GB"]]


def _site(session: Session) -> Site:
    site = session.exec(select(Site).where(Site.name == BENCH_SITE_NAME)).first()
    if site is None:
        site = Site(
            name=BENCH_SITE_NAME,
            timezone="Asia/Hong_Kong",
            phone_region="HK",
            office_phone="+85223456789",
        )
        session.add(site)
        session.flush()
    return site


def _units(session: Session, site: Site) -> Iterator[tuple[str, str]]:
    """Buildings with 40 floors of 10 flats ("1-1609" style), after any seeded before."""
    buildings = session.exec(select(Household.building).where(Household.site_id == site.id)).all()
    building = max((int(b) for b in set(buildings) if b.isdigit()), default=0)
    while True:
        building += 1
        for floor in range(1, 41):
            for flat in range(1, 11):
                yield str(building), f"{floor}{flat:02d}"


def seed_residents(session: Session, count: int, *, seed: int = 1609) -> Site:
    rng = random.Random(seed)
    site = _site(session)
    now = utcnow()
    units = _units(session, site)
    made = 0
    while made < count:
        size = min(BATCH, count - made)
        households, people, contacts = [], [], []
        for _ in range(size):
            building, unit = next(units)
            household_id = uuid.uuid4()
            households.append(
                {
                    "id": household_id,
                    "site_id": site.id,
                    "building": building,
                    "unit": unit,
                    "created_at": now,
                }
            )
            resident_id = uuid.uuid4()
            roll = rng.random()
            if roll < 0.15:
                full = rng.choice(HANZI) + rng.choice(HANZI_GIVEN)
                aliases = [f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}"]
            elif roll < 0.22:
                full = rng.choice(HANGUL)
                aliases = [f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}"]
            else:
                full = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}"
                aliases = []
            people.append(
                {
                    "id": resident_id,
                    "site_id": site.id,
                    "household_id": household_id,
                    "full_name": full,
                    "preferred_name": full.split(" ")[0],
                    "aliases": aliases,
                    "birth_year": rng.randint(1925, 1965),
                    "sex": rng.choice(["female", "male"]),
                    "languages": rng.choice(LANGUAGES),
                    "clothing": rng.choice(CLOTHES),
                    "distinguishing_marks": rng.choice(MARKS),
                    "approach": "Speak calmly.",
                    "places": [],
                    "wandering_history": [],
                    "risk_level": "medium",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            contacts.append(
                {
                    "id": uuid.uuid4(),
                    "resident_id": resident_id,
                    "priority": 1,
                    "name": f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}",
                    "relationship": "child",
                    "phone": f"+8529{rng.randint(1000000, 8999999)}",
                    "language": "en",
                    "channels": ["sms", "voice"],
                    "lives_in_household": False,
                    "can_collect": True,
                    "consent_to_contact": True,
                    "phone_line_type": "mobile",
                    "sms_opted_out": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        _insert(session, households, people, contacts)
        # Lookup: seeded residents consent to being found, and go into the search index.
        _consent_and_index(session, [p["id"] for p in people], now)
        made += size
    audit_record(
        session,
        actor=Actor.system(),
        action="seed.residents",
        entity="site",
        entity_id=site.id,
        site_id=site.id,
        detail={"residents": count},
    )
    return site


def _insert(
    session: Session, households: list[dict], people: list[dict], contacts: list[dict]
) -> None:
    connection = session.connection()
    connection.execute(insert(Household), households)
    connection.execute(insert(Resident), people)
    connection.execute(insert(Contact), contacts)


def _consent_and_index(session: Session, resident_ids: list[uuid.UUID], now: dt.datetime) -> None:
    consent = {
        "given_by_kind": "resident",
        "given_by_name": "seeded",
        "method": "written",
        "scopes": ["registry", "lost_person_response", "photo"],
        "given_at": now,
        "review_due": now + dt.timedelta(days=365),
        "created_at": now,
    }
    session.connection().execute(
        insert(Consent), [{**consent, "id": uuid.uuid4(), "resident_id": r} for r in resident_ids]
    )
    lookup_index.index_residents(session, resident_ids)
