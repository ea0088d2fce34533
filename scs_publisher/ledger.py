#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
"""The ledger: the one durable store every process shares.

Tables:

``outbox``
    What the sinks receive, in the order it was accepted. ``content`` says
    which sinks want it (``raw`` items, ``billing`` events).
    Its unique ``dedup_key`` (an event's message_id, a sample's content
    key, a billing event's deterministic id) makes a second arrival
    of the same item insert nothing; rows are kept at least
    ``dedup_retention`` seconds for that.
``ledger_marks``
    Which outbox ids were the newest at which time, so old rows expire by
    id.
``sink_state``
    Per sink: the cursor (last outbox id handled), the batch in flight,
    its failures and backoff, and the lease that says which process
    delivers for the sink right now.
``dead_letters`` / ``replays``
    Items a sink gave up on, and items an operator asked to send again.
``quarantine``
    Input that could not be understood, with the reason, for an operator.
``resource_state`` / ``usage_windows`` / ``inventory_cycles``
    The reconciler's state: per billable resource, per usage window, per
    inventory cycle.
``ledger_counters``
    Metrics counters (see :mod:`scs_publisher.metrics`).

The schema is versioned in ``ledger_meta`` and created or upgraded on first
use by whichever process gets there first (see :data:`MIGRATIONS`).
"""

import contextlib
import functools
import os
import threading
import time

from oslo_log import log
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc

LOG = log.getLogger(__name__)

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

metadata = sa.MetaData()

ledger_meta = sa.Table(
    'ledger_meta', metadata,
    sa.Column('key', sa.String(64), primary_key=True),
    sa.Column('value', sa.String(255), nullable=False),
)

# Rows are appended in time order, so they expire by id range (see
# ``ledger_marks``) and need no index on time: every index, like every
# table, is paid for on each notification.
outbox = sa.Table(
    'outbox', metadata,
    sa.Column('id', BigId, primary_key=True, autoincrement=True),
    sa.Column('dedup_key', sa.String(64), nullable=False, unique=True),
    sa.Column('content', sa.String(16), nullable=False),
    sa.Column('kind', sa.String(32), nullable=False),
    sa.Column('item_id', sa.String(255), nullable=False),
    sa.Column('event_type', sa.String(255), nullable=False),
    sa.Column('project_id', sa.String(255)),
    sa.Column('created_at', sa.Double, nullable=False),
    sa.Column('payload', sa.Text().with_variant(
        mysql.LONGTEXT(), 'mysql'), nullable=False),
)

# Written by housekeeping about once a minute: the highest ids at a time.
# They turn "older than T" into "id up to N" for expiry and replay.
ledger_marks = sa.Table(
    'ledger_marks', metadata,
    sa.Column('id', BigId, primary_key=True, autoincrement=True),
    sa.Column('at', sa.Double, nullable=False),
    sa.Column('outbox_id', BigId, nullable=False),
)

sink_state = sa.Table(
    'sink_state', metadata,
    sa.Column('sink', sa.String(200), primary_key=True),
    sa.Column('cursor', BigId, nullable=False, default=0),
    sa.Column('delivered', BigId, nullable=False, default=0),
    sa.Column('lease_owner', sa.String(200)),
    sa.Column('lease_until', sa.Double),
    sa.Column('inflight_source', sa.String(16)),
    sa.Column('inflight_last', BigId),
    sa.Column('attempts', sa.Integer, nullable=False, default=0),
    # Failed attempts ever (a metric); ``attempts`` counts the current
    # batch's.
    sa.Column('failures', BigId, nullable=False, default=0,
              server_default='0'),
    sa.Column('next_attempt_at', sa.Double),
    sa.Column('last_error', sa.Text),
)

dead_letters = sa.Table(
    'dead_letters', metadata,
    sa.Column('sink', sa.String(200), primary_key=True),
    sa.Column('outbox_id', BigId, primary_key=True),
    sa.Column('reason', sa.Text, nullable=False),
    sa.Column('status_code', sa.Integer),
    sa.Column('response', sa.Text),
    sa.Column('attempts', sa.Integer, nullable=False),
    sa.Column('dead_at', sa.Double, nullable=False),
)

replays = sa.Table(
    'replays', metadata,
    sa.Column('sink', sa.String(200), primary_key=True),
    sa.Column('outbox_id', BigId, primary_key=True),
    sa.Column('requested_at', sa.Double, nullable=False),
)

quarantine = sa.Table(
    'quarantine', metadata,
    sa.Column('id', BigId, primary_key=True, autoincrement=True),
    sa.Column('kind', sa.String(32), nullable=False),
    sa.Column('reason', sa.Text, nullable=False),
    sa.Column('excerpt', sa.Text),
    sa.Column('quarantined_at', sa.Double, nullable=False),
)

# The reconciler's state per billable resource (see reconcile.py). The
# timeline and the emitted facts are JSON: they are read and written whole,
# never queried.
resource_state = sa.Table(
    'resource_state', metadata,
    sa.Column('resource_type', sa.String(64), primary_key=True),
    sa.Column('resource_id', sa.String(255), primary_key=True),
    sa.Column('project_id', sa.String(255)),
    sa.Column('user_id', sa.String(255)),
    sa.Column('started_at', sa.Double),
    sa.Column('ended_at', sa.Double),
    sa.Column('last_seen', sa.Double),
    sa.Column('last_absent_at', sa.Double),
    sa.Column('missed_since', sa.Double),
    sa.Column('misses', sa.Integer, nullable=False, default=0),
    sa.Column('sequence', sa.Integer, nullable=False, default=0),
    sa.Column('review_at', sa.Double, index=True),
    sa.Column('updated_at', sa.Double, nullable=False),
    sa.Column('attributes', sa.Text, nullable=False),
    sa.Column('timeline', sa.Text().with_variant(
        mysql.MEDIUMTEXT(), 'mysql'), nullable=False),
    sa.Column('emitted', sa.Text().with_variant(
        mysql.MEDIUMTEXT(), 'mysql'), nullable=False),
)

# One row per resource, usage meter and window.
usage_windows = sa.Table(
    'usage_windows', metadata,
    sa.Column('resource_id', sa.String(255), primary_key=True),
    sa.Column('meter', sa.String(255), primary_key=True),
    sa.Column('window_start', sa.Double, primary_key=True),
    sa.Column('resource_type', sa.String(64), nullable=False),
    sa.Column('window_end', sa.Double, nullable=False),
    sa.Column('unit', sa.String(64)),
    sa.Column('project_id', sa.String(255)),
    sa.Column('user_id', sa.String(255)),
    # Processing time at which the window is finalized; NULL once it is.
    sa.Column('due_at', sa.Double, index=True),
    sa.Column('live', sa.String(64)),
    sa.Column('sig', sa.Text),
    sa.Column('samples', sa.Text().with_variant(
        mysql.MEDIUMTEXT(), 'mysql'), nullable=False),
)

# Inventory cycles: complete once the marker and every sample it counts
# have arrived; only then is absence from it evidence.
inventory_cycles = sa.Table(
    'inventory_cycles', metadata,
    sa.Column('cycle_id', sa.String(255), primary_key=True),
    sa.Column('resource_type', sa.String(64), nullable=False),
    sa.Column('seen', sa.Integer, nullable=False, default=0),
    sa.Column('listed', sa.Integer),
    sa.Column('started_at', sa.Double),
    sa.Column('marker_at', sa.Double),
    sa.Column('applied_at', sa.Double),
    sa.Column('created_at', sa.Double, nullable=False),
)

# Metrics counters that housekeeping adds to (see metrics.py).
ledger_counters = sa.Table(
    'ledger_counters', metadata,
    sa.Column('name', sa.String(255), primary_key=True),
    sa.Column('value', BigId, nullable=False),
)

# SQLite pages in the WAL before a checkpoint (40 MiB at 4 KiB pages).
WAL_CHECKPOINT_PAGES = 10000

# Execution option that makes a SQLite transaction a plain (deferred) one.
_READ_ONLY = 'scs_read_only'

SCHEMA_VERSION_KEY = 'schema_version'
# The row every outbox writer locks first. On MariaDB and PostgreSQL this
# makes outbox ids commit in id order, so a sink's cursor never passes an
# id whose transaction has not committed yet. SQLite serializes writers
# anyway (BEGIN IMMEDIATE).
OUTBOX_LOCK_KEY = 'outbox_writer'


_V1_TABLES = (ledger_meta, outbox, ledger_marks, sink_state, dead_letters,
              replays, quarantine)
_V2_TABLES = (resource_state, usage_windows, inventory_cycles)


def _create_v1(conn):
    metadata.create_all(conn, tables=_V1_TABLES)
    conn.execute(sa.insert(ledger_meta),
                 [{'key': OUTBOX_LOCK_KEY, 'value': '0'}])


def _create_v2(conn):
    """The reconciler's state."""
    metadata.create_all(conn, tables=_V2_TABLES)


def _create_v3(conn):
    """Metrics: counters, and failed attempts per sink."""
    metadata.create_all(conn, tables=[ledger_counters])
    columns = {c['name'] for c in sa.inspect(conn).get_columns('sink_state')}
    if 'failures' not in columns:  # created by an older version 1
        conn.exec_driver_sql('ALTER TABLE sink_state ADD COLUMN failures '
                             'BIGINT NOT NULL DEFAULT 0')


# Each step brings the schema from version N to N + 1, in one transaction.
MIGRATIONS = [_create_v1, _create_v2, _create_v3]


class LedgerUnavailable(Exception):
    """The ledger cannot be reached or written right now."""


def _describe(exc):
    """A database error without its SQL and parameters (they may hold
    payloads or, in a URL, a password)."""
    orig = getattr(exc, 'orig', None)
    return '%s: %s' % (type(orig or exc).__name__, orig or exc)


def translate_errors(func):
    """Decorator: database errors surface as :class:`LedgerUnavailable`."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except sa_exc.SQLAlchemyError as exc:
            raise LedgerUnavailable(_describe(exc)) from exc
    return wrapper


class Ledger:
    """Owns the SQLAlchemy engine; opened on first use, never in __init__."""

    def __init__(self, url, sqlite_synchronous='normal'):
        self.url = sa.engine.make_url(url)
        self._sqlite_synchronous = sqlite_synchronous.upper()
        self._engine = None
        self._lock = threading.Lock()
        self._sqlite_writer = threading.Lock()
        self._held = None
        self._held_pid = None
        self._statements = None

    @property
    def is_sqlite(self):
        return self.url.get_backend_name() == 'sqlite'

    @property
    def engine(self):
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    try:
                        self._engine = self._open()
                    except (OSError, sa_exc.ArgumentError,
                            ImportError) as exc:
                        raise LedgerUnavailable('%s: %s' % (
                            type(exc).__name__, exc)) from exc
        return self._engine

    def _open(self):
        if self.is_sqlite:
            engine = self._open_sqlite()
        else:
            engine = sa.create_engine(self.url, pool_pre_ping=True,
                                      pool_size=10, max_overflow=60)
        try:
            self._upgrade(engine)
        except sa_exc.SQLAlchemyError as exc:
            engine.dispose()
            raise LedgerUnavailable(_describe(exc)) from exc
        return engine

    def _open_sqlite(self):
        path = self.url.database
        if path and path != ':memory:':
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, mode=0o700, exist_ok=True)
            # Created 0600 before SQLite opens it; SQLite gives its -wal and
            # -shm files the same mode.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        engine = sa.create_engine(
            self.url, connect_args={'timeout': 60,
                                    'check_same_thread': False})
        synchronous = self._sqlite_synchronous

        @sa_event.listens_for(engine, 'connect')
        def _on_connect(dbapi_conn, _record):
            # Let SQLAlchemy, not pysqlite, decide when transactions begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute('PRAGMA journal_mode=WAL')
            cur.execute('PRAGMA synchronous=%s' % synchronous)
            cur.execute('PRAGMA busy_timeout=60000')
            # A checkpoint copies each changed page once, however often it
            # changed since the last one; with one commit per notification
            # the default (every 1000 pages) nearly doubled the cost of a
            # commit. The WAL file is cut back to 64 MiB after each.
            cur.execute('PRAGMA wal_autocheckpoint=%d' % WAL_CHECKPOINT_PAGES)
            cur.execute('PRAGMA journal_size_limit=%d' % (64 * 1024 * 1024))
            cur.close()

        @sa_event.listens_for(engine, 'begin')
        def _on_begin(conn):
            if conn.get_execution_options().get(_READ_ONLY):
                conn.exec_driver_sql('BEGIN')
            else:
                # Take the write lock up front: a deferred transaction
                # that upgrades from read to write fails at once on
                # contention instead of waiting for busy_timeout.
                conn.exec_driver_sql('BEGIN IMMEDIATE')

        return engine

    def _upgrade(self, engine):
        with engine.begin() as conn:
            version = _schema_version(conn)
            if version >= len(MIGRATIONS):
                return
        for attempt in range(5):
            try:
                with engine.begin() as conn:
                    version = _schema_version(conn)
                    for step in MIGRATIONS[version:]:
                        step(conn)
                        version += 1
                        LOG.info('Ledger schema upgraded to version %d',
                                 version)
                    _set_schema_version(conn, version)
                return
            except (sa_exc.IntegrityError, sa_exc.OperationalError,
                    sa_exc.ProgrammingError):
                # Another process is creating the schema at the same time
                # (DDL is not transactional on MariaDB); look again.
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    @contextlib.contextmanager
    def begin(self):
        """A transaction (a connection inside it).

        On SQLite the threads of one process take turns here: SQLite
        allows one writer at a time, and its busy handler, which sleeps and
        polls, is far slower than a lock among threads.
        """
        if self.is_sqlite:
            with self._sqlite_writer, self.engine.begin() as conn:
                yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @contextlib.contextmanager
    def read(self):
        """A read-only transaction. On SQLite (WAL) it neither waits for
        nor blocks writers, so reading a large batch never holds up the
        intake."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{_READ_ONLY: True})
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def raw_transaction(self):
        """A DBAPI cursor inside a transaction, for the intake hot path.

        SQLAlchemy's execution machinery costs several times what SQLite
        itself needs for a small commit; the intake runs once per
        notification, so it sends statements SQLAlchemy compiled for this
        dialect (:attr:`statements`) straight to the driver. SQLite keeps
        one connection per process for it.
        """
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        try:
            if self.is_sqlite:
                with self._sqlite_writer:
                    raw = self._held_sqlite_connection()
                    cursor = raw.driver_connection.cursor()
                    cursor.execute('BEGIN IMMEDIATE')
                    try:
                        yield cursor
                        cursor.execute('COMMIT')
                    except BaseException:
                        _rollback_quietly(cursor)
                        raise
            else:
                raw = self.engine.raw_connection()
                try:
                    cursor = raw.cursor()
                    cursor.execute(self.statements.lock_outbox)
                    yield cursor
                    raw.commit()
                except BaseException:
                    _rollback_quietly(raw)
                    raise
                finally:
                    raw.close()
        except dbapi_error as exc:
            if self.is_sqlite:
                self._drop_held_sqlite_connection()
            raise LedgerUnavailable('%s: %s' % (type(exc).__name__, exc))

    def _held_sqlite_connection(self):
        if self._held is None or self._held_pid != os.getpid():
            self._held = self.engine.raw_connection()
            self._held_pid = os.getpid()
        return self._held

    def _drop_held_sqlite_connection(self):
        if self._held is not None:
            self._held.invalidate()
            self._held = None

    @contextlib.contextmanager
    def begin_writer(self):
        """A transaction that first takes the lock every intake
        transaction takes, for writers of tables the intake writes too: on
        MariaDB, whose row locks of a scanning delete would otherwise
        deadlock with the intake's updates."""
        with self.begin() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql(self.statements.lock_outbox)
            yield conn

    @property
    def dbapi_error(self):
        """The driver's base exception (errors of the raw path)."""
        return self.engine.dialect.loaded_dbapi.Error

    @property
    def statements(self):
        if self._statements is None:
            self._statements = RawStatements(self.engine.dialect)
        return self._statements

    def dispose(self):
        with self._sqlite_writer:
            self._drop_held_sqlite_connection()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @translate_errors
    def mark(self, now):
        """Record the newest ids (housekeeping, about once a minute)."""
        with self.begin() as conn:
            outbox_id = conn.execute(sa.select(sa.func.max(outbox.c.id)))\
                .scalar() or 0
            conn.execute(sa.insert(ledger_marks).values(
                at=now, outbox_id=outbox_id))

    @translate_errors
    def quarantined(self):
        """How many inputs were quarantined as malformed."""
        with self.read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(
                quarantine)).scalar()

    def ids_before(self, conn, when):
        """Every outbox row up to this id was written before ``when`` (as
        far as the marks tell; 0 if they don't)."""
        return conn.execute(
            sa.select(ledger_marks.c.outbox_id)
            .where(ledger_marks.c.at <= when)
            .order_by(ledger_marks.c.at.desc()).limit(1)).scalar() or 0

    @translate_errors
    def prune(self, now, dedup_retention, outbox_retention, sinks,
              chunk=10000):
        """Forget old outbox items; returns how many.

        An item stays while any of ``sinks`` has not passed it, while it is
        dead-lettered or queued for replay for any sink, and for the longer
        of ``dedup_retention`` (its key drops redeliveries) and
        ``outbox_retention`` (for replay) after it was accepted. Deletes go
        in chunks so the intake never waits long.
        """
        keep_for = max(dedup_retention, outbox_retention)
        with self.begin() as conn:
            limit = self.ids_before(conn, now - keep_for)
            cursors = [row.cursor for row in conn.execute(
                sa.select(sink_state.c.cursor)
                .where(sink_state.c.sink.in_(list(sinks))))]
            if len(cursors) == len(set(sinks)):
                limit = min([limit] + cursors)
            else:
                limit = 0  # a sink has not started yet
            held = list(conn.execute(sa.union(
                sa.select(dead_letters.c.outbox_id),
                sa.select(replays.c.outbox_id))).scalars())
        items = self._delete_up_to(outbox, limit, chunk, keep=held)
        with self.begin() as conn:
            conn.execute(sa.delete(ledger_marks)
                         .where(ledger_marks.c.at < now - keep_for - 86400))
        return items

    def _delete_up_to(self, table, limit, chunk, keep=()):
        deleted, after = 0, 0
        keep = set(keep)
        while True:
            with self.begin() as conn:
                ids = list(conn.execute(
                    sa.select(table.c.id).where(table.c.id > after)
                    .where(table.c.id <= limit)
                    .order_by(table.c.id).limit(chunk)).scalars())
                doomed = [i for i in ids if i not in keep]
                for start in range(0, len(doomed), 500):
                    conn.execute(sa.delete(table).where(
                        table.c.id.in_(doomed[start:start + 500])))
                deleted += len(doomed)
            if len(ids) < chunk:
                return deleted
            after = ids[-1]


class RawStatement:
    """A statement compiled once for a dialect, with its parameter order."""

    def __init__(self, statement, dialect, keys):
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        self.sql = str(compiled)
        self._order = compiled.positiontup if compiled.positional else None

    def params(self, row):
        if self._order is None:
            return row
        return tuple(row[name] for name in self._order)


class RawStatements:
    """The intake's statements, compiled for one dialect."""

    OUTBOX_KEYS = ['dedup_key', 'content', 'kind', 'item_id', 'event_type',
                   'project_id', 'created_at', 'payload']

    def __init__(self, dialect):
        name = dialect.name
        if name == 'sqlite':
            insert = sqlite.insert(outbox).on_conflict_do_nothing()
        elif name == 'postgresql':
            insert = postgresql.insert(outbox).on_conflict_do_nothing()
        else:
            insert = sa.insert(outbox).prefix_with('IGNORE')
        #: Appends an item unless its dedup_key is there; rowcount says.
        self.insert_outbox = RawStatement(insert, dialect, self.OUTBOX_KEYS)
        self.insert_quarantine = RawStatement(
            sa.insert(quarantine), dialect,
            ['kind', 'reason', 'excerpt', 'quarantined_at'])
        self.lock_outbox = str(
            sa.update(ledger_meta)
            .where(ledger_meta.c.key == OUTBOX_LOCK_KEY)
            .values(value=ledger_meta.c.value)
            .compile(dialect=dialect,
                     compile_kwargs={'literal_binds': True}))


def _rollback_quietly(handle):
    """Roll back through a DBAPI connection, or a SQLite cursor (whose
    connection runs in autocommit mode, so its rollback() would not)."""
    try:
        if hasattr(handle, 'rollback'):
            handle.rollback()
        else:
            handle.execute('ROLLBACK')
    except Exception:
        pass  # the connection is gone; the transaction is gone with it


def _schema_version(conn):
    if not sa.inspect(conn).has_table('ledger_meta'):
        return 0
    value = conn.execute(
        sa.select(ledger_meta.c.value)
        .where(ledger_meta.c.key == SCHEMA_VERSION_KEY)).scalar()
    return int(value) if value is not None else 0


def _set_schema_version(conn, version):
    updated = conn.execute(
        sa.update(ledger_meta)
        .where(ledger_meta.c.key == SCHEMA_VERSION_KEY)
        .values(value=str(version))).rowcount
    if not updated:
        conn.execute(sa.insert(ledger_meta).values(
            key=SCHEMA_VERSION_KEY, value=str(version)))
