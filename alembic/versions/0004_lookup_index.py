"""guard lookup search index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 16:30:00.000000

The tables (lookup_entry, lookup_word, lookup_variant) are SQLModel tables; the text indexes over
them are not in the metadata and are made here by hand:
- SQLite: an FTS5 trigram table `lookup_fts` over lookup_entry (external content), kept in step by
  triggers;
- PostgreSQL: the pg_trgm extension and GIN trigram indexes on names and description.
Existing findable residents are backfilled with a frozen copy of the folding rules (a migration
must not import application code that may change after it).
"""

import unicodedata
import uuid
from collections import Counter
from collections.abc import Sequence
from itertools import combinations

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('lookup_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Uuid(), nullable=False),
    sa.Column('site_id', sa.Uuid(), nullable=False),
    sa.Column('building', sa.String(length=50), nullable=False),
    sa.Column('unit', sa.String(length=50), nullable=False),
    sa.Column('names', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['resident.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('resident_id')
    )
    with op.batch_alter_table('lookup_entry', schema=None) as batch_op:
        batch_op.create_index('ix_lookup_entry_unit_building', ['unit', 'building'], unique=False)

    op.create_table('lookup_name',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['lookup_entry.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lookup_name', schema=None) as batch_op:
        batch_op.create_index('ix_lookup_name_name', ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_lookup_name_entry_id'), ['entry_id'], unique=False)

    op.create_table('lookup_word',
    sa.Column('word', sa.String(length=200), nullable=False),
    sa.Column('refs', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('word')
    )
    op.create_table('lookup_variant',
    sa.Column('variant', sa.String(length=200), nullable=False),
    sa.Column('word', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['word'], ['lookup_word.word'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('variant', 'word')
    )
    with op.batch_alter_table('lookup_variant', schema=None) as batch_op:
        batch_op.create_index('ix_lookup_variant_word', ['word'], unique=False)

    if op.get_bind().dialect.name == 'sqlite':
        op.execute(
            "CREATE VIRTUAL TABLE lookup_fts USING fts5(names, description, "
            "content='lookup_entry', content_rowid='id', tokenize='trigram')"
        )
        op.execute(
            "CREATE TRIGGER lookup_entry_ai AFTER INSERT ON lookup_entry BEGIN "
            "INSERT INTO lookup_fts(rowid, names, description) "
            "VALUES (new.id, new.names, new.description); END"
        )
        op.execute(
            "CREATE TRIGGER lookup_entry_ad AFTER DELETE ON lookup_entry BEGIN "
            "INSERT INTO lookup_fts(lookup_fts, rowid, names, description) "
            "VALUES ('delete', old.id, old.names, old.description); END"
        )
        op.execute(
            "CREATE TRIGGER lookup_entry_au AFTER UPDATE ON lookup_entry BEGIN "
            "INSERT INTO lookup_fts(lookup_fts, rowid, names, description) "
            "VALUES ('delete', old.id, old.names, old.description); "
            "INSERT INTO lookup_fts(rowid, names, description) "
            "VALUES (new.id, new.names, new.description); END"
        )
    else:
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
        # Qualified: the extension may live in a schema outside this connection's search_path.
        schema = op.get_bind().execute(sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_trgm'"
        )).scalar_one()
        for column in ('names', 'description'):
            op.execute(
                f'CREATE INDEX ix_lookup_entry_{column}_trgm ON lookup_entry '
                f'USING gin ({column} "{schema}".gin_trgm_ops)'
            )

    _backfill()


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for trigger in ('lookup_entry_ai', 'lookup_entry_ad', 'lookup_entry_au'):
            op.execute(f'DROP TRIGGER IF EXISTS {trigger}')
        op.execute('DROP TABLE IF EXISTS lookup_fts')
    else:
        op.execute('DROP INDEX IF EXISTS ix_lookup_entry_names_trgm')
        op.execute('DROP INDEX IF EXISTS ix_lookup_entry_description_trgm')
        # The extension goes too, unless something else (another schema's index) still uses it.
        op.execute(
            'DO $$ BEGIN DROP EXTENSION IF EXISTS pg_trgm; '
            'EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$'
        )
    with op.batch_alter_table('lookup_variant', schema=None) as batch_op:
        batch_op.drop_index('ix_lookup_variant_word')

    op.drop_table('lookup_variant')
    op.drop_table('lookup_word')
    with op.batch_alter_table('lookup_name', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lookup_name_entry_id'))
        batch_op.drop_index('ix_lookup_name_name')

    op.drop_table('lookup_name')
    with op.batch_alter_table('lookup_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_lookup_entry_unit_building')

    op.drop_table('lookup_entry')


# --- backfill: a frozen copy of welfare/lookup/text.py as of this revision ----------------------

_BUILDING_WORDS = ('building', 'bldg', 'block', 'blk', 'tower', 'twr', 'house', 'bld', 'tw')


def _fold(text):
    if not text:
        return ''
    decomposed = unicodedata.normalize('NFKD', text)
    stripped = ''.join(c for c in decomposed if not unicodedata.combining(c))
    composed = unicodedata.normalize('NFKC', stripped).casefold()
    return ' '.join(''.join(c if c.isalnum() else ' ' for c in composed).split())


def _joined(parts, dedupe):
    folded = [f for f in (_fold(p) for p in parts) if f]
    if dedupe:
        folded = list(dict.fromkeys(folded))
    return ('|' + '|'.join(folded) + '|') if folded else ''


def _building_key(building):
    key = _fold(building).replace(' ', '')
    for word in _BUILDING_WORDS:
        if key.startswith(word) and len(key) > len(word):
            return key[len(word):]
    if len(key) > 1 and key[0] == 'b' and key[1:].isdigit():
        return key[1:]
    return key


def _typo_budget(word):
    if not (word.isascii() and word.isalpha()) or len(word) < 4:
        return 0
    return 1 if len(word) <= 5 else 2


def _deletes(word, depth):
    out = {word}
    for k in range(1, min(depth, len(word) - 1) + 1):
        for drop in combinations(range(len(word)), k):
            out.add(''.join(c for i, c in enumerate(word) if i not in drop))
    return out


def _backfill():
    bind = op.get_bind()
    resident = sa.table(
        'resident', sa.column('id', sa.Uuid()), sa.column('site_id', sa.Uuid()),
        sa.column('household_id', sa.Uuid()), sa.column('erased_at', sa.DateTime()),
        sa.column('full_name', sa.String()), sa.column('preferred_name', sa.String()),
        sa.column('aliases', sa.JSON()), sa.column('clothing', sa.String()),
        sa.column('hair', sa.String()), sa.column('build', sa.String()),
        sa.column('distinguishing_marks', sa.String()), sa.column('eyes', sa.String()),
    )
    household = sa.table(
        'household', sa.column('id', sa.Uuid()), sa.column('building', sa.String()),
        sa.column('unit', sa.String()),
    )
    consent = sa.table(
        'consent', sa.column('resident_id', sa.Uuid()), sa.column('scopes', sa.JSON()),
        sa.column('withdrawn_at', sa.DateTime()),
    )
    entry = sa.table(
        'lookup_entry', sa.column('id', sa.Integer()), sa.column('resident_id', sa.Uuid()), sa.column('site_id', sa.Uuid()),
        sa.column('building', sa.String()), sa.column('unit', sa.String()),
        sa.column('names', sa.Text()), sa.column('description', sa.Text()),
    )
    name_table = sa.table('lookup_name', sa.column('entry_id', sa.Integer()), sa.column('name', sa.Text()))
    word_table = sa.table('lookup_word', sa.column('word', sa.String()), sa.column('refs', sa.Integer()))
    variant_table = sa.table(
        'lookup_variant', sa.column('variant', sa.String()), sa.column('word', sa.String())
    )
    findable: set[uuid.UUID] = {
        rid
        for rid, scopes in bind.execute(
            sa.select(consent.c.resident_id, consent.c.scopes).where(consent.c.withdrawn_at.is_(None))
        )
        if 'lost_person_response' in (scopes or [])
    }
    rows = bind.execute(
        sa.select(resident, household.c.building, household.c.unit)
        .join(household, household.c.id == resident.c.household_id)
        .where(resident.c.erased_at.is_(None))
    ).mappings()
    entries = []
    words: Counter[str] = Counter()
    for row in rows:
        if row['id'] not in findable:
            continue
        names = _joined([row['full_name'], row['preferred_name'], *(row['aliases'] or [])], True)
        entries.append({
            'resident_id': row['id'],
            'site_id': row['site_id'],
            'building': _building_key(row['building'])[:50],
            'unit': _fold(row['unit']).replace(' ', '')[:50],
            'names': names,
            'description': _joined(
                [row['clothing'], row['hair'], row['build'], row['distinguishing_marks'], row['eyes']],
                False,
            ),
        })
        words.update({w for n in names.split('|') for w in n.split() if _typo_budget(w)})
    for start in range(0, len(entries), 5000):
        bind.execute(entry.insert(), entries[start:start + 5000])
    names = [
        {'entry_id': entry_id, 'name': name}
        for entry_id, joined in bind.execute(sa.select(entry.c.id, entry.c.names))
        for name in joined.split('|') if name
    ]
    for start in range(0, len(names), 5000):
        bind.execute(name_table.insert(), names[start:start + 5000])
    if words:
        bind.execute(word_table.insert(), [{'word': w, 'refs': n} for w, n in sorted(words.items())])
        variants = [
            {'variant': v, 'word': w} for w in sorted(words) for v in sorted(_deletes(w, _typo_budget(w)))
        ]
        for start in range(0, len(variants), 5000):
            bind.execute(variant_table.insert(), variants[start:start + 5000])
