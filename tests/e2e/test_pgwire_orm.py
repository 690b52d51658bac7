"""End to end: SQLAlchemy's ORM and psycopg 3's asyncio connection, unchanged, through
the wire front end to a SQLite and a PostgreSQL tenant.

- The ORM: a declarative ``Contact`` mapped on ``Contacts``, a ``Session`` that selects,
  adds and commits (an INSERT ... RETURNING of the new key), reads the row back, and
  rolls another one back; one flush of several new objects (SQLAlchemy's batched
  "insertmanyvalues" INSERT) gets each object its own key.
- ``psycopg.AsyncConnection``: a parameterised read, a committed and a rolled-back
  transaction.

The service is the one of ``test_pgwire`` (its fixture, a process of this module's own).
Outcomes are checked in the tenants' databases (``Wire.stored``).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tests.e2e.test_pgwire import INSERT, SECRET, TENANTS, USER, Wire, mark, wire

__all__ = ["wire"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.e2e


# -- SQLAlchemy ORM ----------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Contact(Base):
    """A few of the base model's columns: the ORM needs no more than it maps."""

    __tablename__ = "Contacts"

    ContactID: Mapped[int] = mapped_column(primary_key=True)
    FirstName: Mapped[str]
    LastName: Mapped[str]
    IsActive: Mapped[bool]
    CreatedAt: Mapped[datetime.datetime]


@pytest.fixture
def engine(wire: Wire, request: pytest.FixtureRequest) -> Iterator[Engine]:
    tenant = request.node.callspec.params["tenant"]
    made = create_engine(
        f"postgresql+psycopg://{USER}:{SECRET}@{wire.host}:{wire.port}/{tenant}?sslmode=disable"
    )
    try:
        yield made
    finally:
        made.dispose()


@pytest.mark.parametrize("tenant", TENANTS)
def test_orm_reads_with_a_select(engine: Engine, tenant: str) -> None:
    with Session(engine) as session:
        found = session.scalars(
            select(Contact).where(Contact.ContactID <= 3).order_by(Contact.ContactID)
        ).all()
        assert [c.ContactID for c in found] == [1, 2, 3]
        assert all(isinstance(c.FirstName, str) for c in found)
        assert all(isinstance(c.CreatedAt, datetime.datetime) for c in found)
        assert session.get(Contact, 2) is found[1]  # the identity map: no second query


@pytest.mark.parametrize("tenant", TENANTS)
def test_orm_adds_commits_and_reads_back(wire: Wire, engine: Engine, tenant: str) -> None:
    last = mark()
    created = datetime.datetime(2024, 5, 1, 10, 0)
    with Session(engine) as session:
        ada = Contact(FirstName="Ada", LastName=last, IsActive=True, CreatedAt=created)
        session.add(ada)
        session.commit()
        key = ada.ContactID  # the key the INSERT returned; a new transaction reads it
        assert isinstance(key, int) and key > 20
    assert wire.stored(tenant, last) == 1
    with Session(engine) as session:
        back = session.scalars(select(Contact).where(Contact.LastName == last)).one()
        assert (back.ContactID, back.FirstName, back.IsActive) == (key, "Ada", True)
        assert back.CreatedAt == created


@pytest.mark.parametrize("tenant", TENANTS)
def test_orm_rollback_leaves_nothing(wire: Wire, engine: Engine, tenant: str) -> None:
    last = mark()
    created = datetime.datetime(2024, 5, 2, 9, 30)
    with Session(engine) as session:
        for name in ("A", "B"):
            session.add(Contact(FirstName=name, LastName=last, IsActive=False, CreatedAt=created))
            session.flush()  # its INSERT ... RETURNING, inside the session's transaction
        seen = session.scalars(select(Contact.ContactID).where(Contact.LastName == last)).all()
        assert len(seen) == 2
        session.rollback()
        assert session.scalars(select(Contact).where(Contact.LastName == last)).all() == []
    assert wire.stored(tenant, last) == 0


CREATED = datetime.datetime(2024, 5, 3, 10, 20, 30, 123456)
"""With microseconds: a batched insert casts each value (``p3::TIMESTAMP``), and
SQLite's ``DATETIME(x)`` would keep whole seconds only."""


def _new(last: str, names: str = "AB") -> list[Contact]:
    return [Contact(FirstName=n, LastName=last, IsActive=True, CreatedAt=CREATED) for n in names]


@pytest.mark.parametrize("tenant", TENANTS)
def test_orm_batched_insert_returns_keys_in_order(wire: Wire, engine: Engine, tenant: str) -> None:
    """One flush of several new objects whose keys the server makes: SQLAlchemy's
    "insertmanyvalues" sends ``INSERT ... SELECT p0::VARCHAR, ... FROM (VALUES (...), ...)
    AS imp_sen(p0, ..., sen_counter) ORDER BY sen_counter RETURNING ...`` and matches
    the returned keys to its objects by their order (``sort_by_parameter_order``). The
    rewriter accepts that shape (docs/rewriter.md, Writes); on SQLite the rows become a
    CTE. Each object gets its own row's key, in the order the objects were added."""
    last = mark()
    names = "CAB"
    with Session(engine) as session:
        added = _new(last, names)
        session.add_all(added)
        session.commit()
        keys = [c.ContactID for c in added]
    assert all(isinstance(k, int) for k in keys)
    assert keys == sorted(keys) and len(set(keys)) == len(keys)  # generated in object order
    assert wire.stored(tenant, last) == len(names)
    with Session(engine) as session:
        back = session.execute(
            select(Contact.ContactID, Contact.FirstName, Contact.CreatedAt).where(
                Contact.LastName == last
            )
        ).all()
    assert sorted((key, name) for key, name, _ in back) == list(zip(keys, names, strict=True))
    assert {created for _, _, created in back} == {CREATED}, "no fraction of a second lost"

    # The same flush one INSERT ... RETURNING per object still works.
    one_by_one = create_engine(engine.url, use_insertmanyvalues=False)
    try:
        with Session(one_by_one) as session:
            more = _new(last)
            session.add_all(more)
            session.commit()
            assert len({c.ContactID for c in more} - set(keys)) == 2
    finally:
        one_by_one.dispose()
    assert wire.stored(tenant, last) == len(names) + 2


# -- psycopg, asyncio ----------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # psycopg's async connection is asyncio's


@pytest.mark.anyio
@pytest.mark.parametrize("tenant", TENANTS)
async def test_psycopg_async_reads_with_parameters(wire: Wire, tenant: str) -> None:
    async with await psycopg.AsyncConnection.connect(wire.dsn(tenant), autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT ContactID, FirstName FROM Contacts WHERE ContactID BETWEEN %s AND %s "
            "ORDER BY ContactID",
            [2, 4],
        )
        rows = await cur.fetchall()
    assert [r[0] for r in rows] == [2, 3, 4]
    assert all(isinstance(r[1], str) for r in rows)


@pytest.mark.anyio
@pytest.mark.parametrize("tenant", TENANTS)
async def test_psycopg_async_transaction_commits_and_rolls_back(wire: Wire, tenant: str) -> None:
    kept, dropped = mark(), mark()
    async with await psycopg.AsyncConnection.connect(wire.dsn(tenant)) as conn:
        async with conn.transaction():
            await conn.execute(INSERT, ["a", kept])
            await conn.execute(INSERT, ["b", kept])
        await conn.execute(INSERT, ["c", dropped])
        cur = await conn.execute("SELECT COUNT(*) FROM Contacts WHERE LastName = %s", [dropped])
        assert await cur.fetchone() == (1,)  # seen inside its own transaction
        await conn.rollback()
        with pytest.raises(psycopg.IntegrityError):
            async with conn.transaction():
                await conn.execute(INSERT, ["d", dropped])
                await conn.execute(INSERT, [None, dropped])
    assert wire.stored(tenant, kept) == 2
    assert wire.stored(tenant, dropped) == 0


# -- SQLAlchemy's asyncio extension on asyncpg ---------------------------------------------------


@pytest.mark.parametrize("tenant", TENANTS)
def test_sqlalchemy_asyncio_on_asyncpg_reflects_and_uses_the_orm(wire: Wire, tenant: str) -> None:
    """asyncpg describes every statement before it binds it, catalog queries too, and
    encodes each value by the type announced: reflection needs the catalog's parameter
    types (an ``int`` for ``attnum > $11``, a name for ``$2::regclass``) and its array
    columns in binary."""
    import sqlalchemy  # noqa: PLC0415 - the asyncio extension needs greenlet
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine  # noqa: PLC0415

    last = mark()

    async def main() -> tuple[list[str], list[str], list[int], int]:
        engine = create_async_engine(
            f"postgresql+asyncpg://{USER}:{SECRET}@{wire.host}:{wire.port}/{tenant}"
        )
        try:
            async with engine.connect() as conn:
                inspector = await conn.run_sync(sqlalchemy.inspect)
                columns = await conn.run_sync(lambda _: inspector.get_columns("Contacts"))
                key = await conn.run_sync(lambda _: inspector.get_pk_constraint("Contacts"))
            async with AsyncSession(engine) as session:
                found = (
                    await session.scalars(
                        select(Contact).where(Contact.ContactID <= 2).order_by(Contact.ContactID)
                    )
                ).all()
                ids = [c.ContactID for c in found]
                session.add(
                    Contact(FirstName="Ann", LastName=last, IsActive=True,
                            CreatedAt=datetime.datetime(2024, 5, 1, 10, 0))
                )  # fmt: skip
                await session.commit()
                stored = len((await session.scalars(
                    select(Contact).where(Contact.LastName == last))).all())  # fmt: skip
            return [c["name"] for c in columns], key["constrained_columns"], ids, stored
        finally:
            await engine.dispose()

    names, key, ids, stored = asyncio.run(main())
    assert {"ContactID", "FirstName", "LastName", "CreatedAt"} <= set(names)
    assert key == ["ContactID"]
    assert ids == [1, 2]
    assert stored == 1 and wire.stored(tenant, last) == 1
