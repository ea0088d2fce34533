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
"""One sink's view of the outbox: its progress, leases, retries, dead
letters and replays.

A sink delivers in outbox order. Its cursor is the last outbox id it has
handled; the batch after the cursor is frozen as "in flight" the first time
it is read, so every retry sends the same items under the same delivery id.
Replays (requested by an operator) go before new items.

Only the process holding the sink's lease may move its cursor; every write
checks the lease inside the same transaction, so a process that lost its
lease (it stalled past ``lease_seconds``) cannot move the cursor: at worst a
batch is sent twice, never skipped.
"""

import dataclasses
import os
import socket
import time
import uuid

import sqlalchemy as sa

from scs_publisher import ledger as ledger_mod

SOURCE_OUTBOX = 'outbox'
SOURCE_REPLAY = 'replay'

_outbox = ledger_mod.outbox
_state = ledger_mod.sink_state
_dead = ledger_mod.dead_letters
_replays = ledger_mod.replays

_ITEM_COLUMNS = (_outbox.c.id, _outbox.c.kind, _outbox.c.item_id,
                 _outbox.c.event_type, _outbox.c.project_id,
                 _outbox.c.created_at, _outbox.c.payload)

# The statements a dispatcher runs for every batch, built once: building a
# statement costs more than SQLite takes to run it. (Parameters are named
# b_*: SQLAlchemy reserves column names in UPDATE statements.)
_bp = sa.bindparam
_THIS_SINK = _state.c.sink == _bp('b_sink')
_TAKE_LEASE = (sa.update(_state).where(_THIS_SINK)
               .where(sa.or_(_state.c.lease_owner.is_(None),
                             _state.c.lease_owner == _bp('b_owner'),
                             _state.c.lease_until < _bp('b_now')))
               .values(lease_owner=_bp('b_owner'), lease_until=_bp('b_until')))
_READ_STATE = sa.select(_state).where(_THIS_SINK)
_replay_ids = (sa.select(_replays.c.outbox_id)
               .where(_replays.c.sink == _bp('b_sink'))
               .order_by(_replays.c.outbox_id).limit(_bp('b_limit'))
               .subquery())
_LAST_REPLAY = sa.select(sa.func.max(_replay_ids.c.outbox_id))
_outbox_ids = (sa.select(_outbox.c.id)
               .where(_outbox.c.content == _bp('b_content'))
               .where(_outbox.c.id > _bp('b_cursor'))
               .order_by(_outbox.c.id).limit(_bp('b_limit')).subquery())
_LAST_OUTBOX = sa.select(sa.func.max(_outbox_ids.c.id))
_SET_INFLIGHT = (sa.update(_state).where(_THIS_SINK)
                 .values(inflight_source=_bp('b_source'),
                         inflight_last=_bp('b_last')))
_LOAD_OUTBOX = (sa.select(*_ITEM_COLUMNS)
                .where(_outbox.c.content == _bp('b_content'))
                .where(_outbox.c.id > _bp('b_cursor'))
                .where(_outbox.c.id <= _bp('b_last'))
                .order_by(_outbox.c.id))
_LOAD_REPLAY = (sa.select(*_ITEM_COLUMNS, _replays.c.requested_at)
                .join(_replays, _replays.c.outbox_id == _outbox.c.id)
                .where(_replays.c.sink == _bp('b_sink'))
                .where(_outbox.c.id <= _bp('b_last'))
                .order_by(_outbox.c.id))
_FINISH = (sa.update(_state).where(_THIS_SINK)
           .where(_state.c.lease_owner == _bp('b_owner'))
           .values(inflight_source=None, inflight_last=None, attempts=0,
                   next_attempt_at=None,
                   last_error=None,
                   delivered=_state.c.delivered + _bp('b_count')))
_FINISH_OUTBOX = _FINISH.values(cursor=_bp('b_last'))


def lease_owner(pid=None):
    """This process's name in leases: host, pid and a random part."""
    return '%s:%d:%s' % (socket.gethostname(), pid or os.getpid(),
                         uuid.uuid4().hex[:8])


def owner_is_gone(owner):
    """True when ``owner`` names a process on this host that has exited."""
    host, _, rest = owner.partition(':')
    pid = rest.partition(':')[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by someone else
    return False


class LeaseLost(Exception):
    """Another process took this sink over while we delivered."""


class LeaseHeld(Exception):
    """Another process delivers for this sink."""


@dataclasses.dataclass(frozen=True)
class OutboxItem:
    id: int
    kind: str
    item_id: str
    event_type: str
    project_id: str | None
    created_at: float
    payload: str


@dataclasses.dataclass(frozen=True)
class Batch:
    source: str
    items: list
    last_id: int
    attempts: int
    next_attempt_at: float | None
    # When the items started waiting: acceptance time for new items, the
    # request time for replays. max_retry_age counts from here.
    waiting_since: float


@dataclasses.dataclass(frozen=True)
class SinkStatus:
    sink: str
    pending: int
    oldest_pending_age: float | None
    delivered: int
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    dead_letters: int
    failures: int
    lease_owner: str | None
    lease_until: float | None


class SinkQueue:
    def __init__(self, ledger, sink, content):
        self.ledger = ledger
        self.sink = sink
        self.content = content
        self._row_exists = False

    # -- leases -----------------------------------------------------------

    def _take_lease(self, conn, owner, ttl):
        """Take or renew the lease; False when another process holds it."""
        now = time.time()
        self._ensure_row(conn)
        if conn.execute(_TAKE_LEASE, {'b_sink': self.sink, 'b_owner': owner,
                                      'b_now': now, 'b_until': now + ttl}
                        ).rowcount == 1:
            return True
        holder = conn.execute(sa.select(_state.c.lease_owner).where(
            _state.c.sink == self.sink)).scalar()
        if holder and owner_is_gone(holder):
            # Its process died on this host (an agent restart after a
            # crash): no need to wait for the lease to expire.
            return conn.execute(
                sa.update(_state).where(_state.c.sink == self.sink)
                .where(_state.c.lease_owner == holder)
                .values(lease_owner=owner, lease_until=now + ttl)
            ).rowcount == 1
        return False

    @ledger_mod.translate_errors
    def release(self, owner):
        with self.ledger.begin() as conn:
            conn.execute(
                sa.update(_state).where(_state.c.sink == self.sink)
                .where(_state.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None))

    def _ensure_row(self, conn):
        if self._row_exists:
            return
        exists = conn.execute(sa.select(_state.c.sink).where(
            _state.c.sink == self.sink)).first()
        if not exists:
            # A new sink starts with everything the ledger still holds.
            conn.execute(sa.insert(_state).values(
                sink=self.sink, cursor=0, delivered=0, attempts=0,
                failures=0))
        self._row_exists = True

    # -- the batch at the head ---------------------------------------------

    @ledger_mod.translate_errors
    def head(self, owner, batch_size, lease_ttl):
        """Take or renew the sink's lease for ``lease_ttl`` seconds and
        return the batch to deliver next, or None when nothing waits.

        :raises LeaseHeld: another process delivers for this sink.
        """
        # A short write transaction fixes which items the batch holds...
        with self.ledger.begin() as conn:
            if not self._take_lease(conn, owner, lease_ttl):
                raise LeaseHeld(self.sink)
            state = self._owned_state(conn, owner)
            source, last = state.inflight_source, state.inflight_last
            if not source:
                source, last = self._next_range(conn, state.cursor,
                                                batch_size)
                if source is None:
                    return None
                conn.execute(_SET_INFLIGHT, {'b_sink': self.sink,
                                             'b_source': source,
                                             'b_last': last})
        # ...and the items themselves, which never change, are read
        # outside it, so the intake does not wait for a large read.
        with self.ledger.read() as conn:
            rows = self._load(conn, source, state.cursor, last)
        items = [OutboxItem(*row[:7]) for row in rows]
        if source == SOURCE_REPLAY:
            since = min((row.requested_at for row in rows),
                        default=time.time())
        else:
            since = min((i.created_at for i in items), default=time.time())
        return Batch(source=source, items=items, last_id=last,
                     attempts=state.attempts,
                     next_attempt_at=state.next_attempt_at,
                     waiting_since=since)

    def _next_range(self, conn, cursor, limit):
        """``(source, last id)`` of the next batch: replays first."""
        last = conn.execute(_LAST_REPLAY, {'b_sink': self.sink,
                                           'b_limit': limit}).scalar()
        if last is not None:
            return SOURCE_REPLAY, last
        last = conn.execute(_LAST_OUTBOX, {'b_content': self.content,
                                           'b_cursor': cursor,
                                           'b_limit': limit}).scalar()
        return (SOURCE_OUTBOX, last) if last is not None else (None, None)

    def _load(self, conn, source, cursor, last):
        if source == SOURCE_REPLAY:
            return conn.execute(_LOAD_REPLAY, {'b_sink': self.sink,
                                               'b_last': last}).all()
        return conn.execute(_LOAD_OUTBOX, {'b_content': self.content,
                                           'b_cursor': cursor,
                                           'b_last': last}).all()

    def _owned_state(self, conn, owner):
        state = conn.execute(_READ_STATE, {'b_sink': self.sink}).first()
        if state is None or state.lease_owner != owner:
            raise LeaseLost(self.sink)
        return state

    # -- outcomes -----------------------------------------------------------

    def _finish(self, conn, owner, batch, delivered):
        params = {'b_sink': self.sink, 'b_owner': owner, 'b_count': delivered,
                  'b_last': batch.last_id}
        if batch.source == SOURCE_OUTBOX:
            statement = _FINISH_OUTBOX
        else:
            statement = _FINISH
            conn.execute(sa.delete(_replays)
                         .where(_replays.c.sink == self.sink)
                         .where(_replays.c.outbox_id <= batch.last_id))
        if conn.execute(statement, params).rowcount != 1:
            raise LeaseLost(self.sink)

    @ledger_mod.translate_errors
    def complete(self, owner, batch, delivered):
        """The batch is handled: ``delivered`` of its items were sent."""
        with self.ledger.begin() as conn:
            self._finish(conn, owner, batch, delivered)

    @ledger_mod.translate_errors
    def fail(self, owner, batch, error, next_attempt_at):
        """The batch failed and will be tried again at ``next_attempt_at``."""
        with self.ledger.begin() as conn:
            moved = conn.execute(
                sa.update(_state).where(_state.c.sink == self.sink)
                .where(_state.c.lease_owner == owner)
                .values(attempts=_state.c.attempts + 1,
                        failures=_state.c.failures + 1,
                        next_attempt_at=next_attempt_at,
                        last_error=error[:2000])).rowcount
        if moved != 1:
            raise LeaseLost(self.sink)

    @ledger_mod.translate_errors
    def shrink(self, owner, batch, last_id):
        """Narrow the in-flight batch to items up to ``last_id`` (to find
        the one item a sink refuses)."""
        with self.ledger.begin() as conn:
            moved = conn.execute(
                sa.update(_state).where(_state.c.sink == self.sink)
                .where(_state.c.lease_owner == owner)
                .values(inflight_last=last_id)).rowcount
        if moved != 1:
            raise LeaseLost(self.sink)

    @ledger_mod.translate_errors
    def dead_letter(self, owner, batch, items, reason, status_code=None,
                    response=None):
        """Give up on ``items``, the sendable items of the batch."""
        now = time.time()
        ids = [i.id for i in items]
        with self.ledger.begin() as conn:
            conn.execute(sa.delete(_dead).where(_dead.c.sink == self.sink)
                         .where(_dead.c.outbox_id.in_(ids)))
            conn.execute(sa.insert(_dead), [
                {'sink': self.sink, 'outbox_id': i, 'reason': reason[:2000],
                 'status_code': status_code,
                 'response': (response or '')[:4000] or None,
                 'attempts': batch.attempts + 1, 'dead_at': now}
                for i in ids])
            self._finish(conn, owner, batch, 0)

    # -- operators ------------------------------------------------------------

    @ledger_mod.translate_errors
    def replay_dead_letters(self, outbox_ids=None):
        """Queue dead letters (all, or these ids) for delivery again."""
        now = time.time()
        with self.ledger.begin() as conn:
            query = sa.select(_dead.c.outbox_id).where(
                _dead.c.sink == self.sink)
            if outbox_ids is not None:
                query = query.where(_dead.c.outbox_id.in_(list(outbox_ids)))
            ids = list(conn.execute(query).scalars())
            self._queue_replays(conn, ids, now)
            if ids:
                conn.execute(sa.delete(_dead).where(_dead.c.sink == self.sink)
                             .where(_dead.c.outbox_id.in_(ids)))
        return len(ids)

    @ledger_mod.translate_errors
    def replay_range(self, since, until):
        """Queue every item of this sink's content accepted in
        [since, until) for delivery again."""
        now = time.time()
        with self.ledger.begin() as conn:
            # The marks narrow the scan to an id range; created_at decides.
            first = self.ledger.ids_before(conn, since)
            query = (sa.select(_outbox.c.id)
                     .where(_outbox.c.id > first)
                     .where(_outbox.c.content == self.content)
                     .where(_outbox.c.created_at >= since)
                     .where(_outbox.c.created_at < until)
                     .order_by(_outbox.c.id))
            ids = list(conn.execute(query).scalars())
            self._queue_replays(conn, ids, now)
        return len(ids)

    def _queue_replays(self, conn, ids, now):
        if not ids:
            return
        self._ensure_row(conn)
        queued = set()
        for start in range(0, len(ids), 500):
            queued.update(conn.execute(
                sa.select(_replays.c.outbox_id)
                .where(_replays.c.sink == self.sink)
                .where(_replays.c.outbox_id.in_(ids[start:start + 500]))
            ).scalars())
        rows = [{'sink': self.sink, 'outbox_id': i, 'requested_at': now}
                for i in ids if i not in queued]
        if rows:
            conn.execute(sa.insert(_replays), rows)

    @ledger_mod.translate_errors
    def dead_letter_list(self, limit=100):
        with self.ledger.read() as conn:
            return conn.execute(
                sa.select(_dead.c.outbox_id, _dead.c.reason,
                          _dead.c.status_code, _dead.c.response,
                          _dead.c.attempts, _dead.c.dead_at,
                          _outbox.c.kind, _outbox.c.item_id,
                          _outbox.c.event_type)
                .join(_outbox, _outbox.c.id == _dead.c.outbox_id)
                .where(_dead.c.sink == self.sink)
                .order_by(_dead.c.outbox_id).limit(limit)).all()

    @ledger_mod.translate_errors
    def status(self):
        now = time.time()
        with self.ledger.read() as conn:
            state = conn.execute(sa.select(_state).where(
                _state.c.sink == self.sink)).first()
            cursor = state.cursor if state else 0
            pending, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(_outbox.c.created_at))
                .where(_outbox.c.content == self.content)
                .where(_outbox.c.id > cursor)).one()
            replay_count, replay_oldest = conn.execute(
                sa.select(sa.func.count(),
                          sa.func.min(_replays.c.requested_at))
                .where(_replays.c.sink == self.sink)).one()
            dead = conn.execute(sa.select(sa.func.count()).where(
                _dead.c.sink == self.sink)).scalar()
        oldest_times = [t for t in (oldest, replay_oldest) if t is not None]
        return SinkStatus(
            sink=self.sink, pending=pending + replay_count,
            oldest_pending_age=(now - min(oldest_times)
                                if oldest_times else None),
            delivered=state.delivered if state else 0,
            attempts=state.attempts if state else 0,
            failures=state.failures if state else 0,
            next_attempt_at=state.next_attempt_at if state else None,
            last_error=state.last_error if state else None,
            dead_letters=dead,
            lease_owner=state.lease_owner if state else None,
            lease_until=state.lease_until if state else None)
