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
"""The reconciler's state in the ledger, inside the intake's transaction.

For each accepted item that tells something about billing, the intake
calls :meth:`ReconcileStore.apply` with its open transaction: the state of
the resource is loaded, the pure rules of :mod:`reconcile` and
:mod:`usage` applied, the state written back and the billing events
appended to the outbox (``content = billing``, keyed on their
deterministic id), all in that one transaction. Writers of the outbox are
serialized (SQLite's write lock; the outbox lock row on MariaDB and
PostgreSQL), so two processes never work on one resource at once.

:meth:`ReconcileStore.review` is the housekeeping half: facts held back
for ``settle``, usage windows due, and expiry.
"""

import json
import threading

from oslo_log import log
import sqlalchemy as sa

from scs_publisher import billing
from scs_publisher import ledger as ledger_mod
from scs_publisher import metrics
from scs_publisher import normalize
from scs_publisher import observations
from scs_publisher import reconcile
from scs_publisher import usage

LOG = log.getLogger(__name__)

_state = ledger_mod.resource_state
_windows = ledger_mod.usage_windows
_cycles = ledger_mod.inventory_cycles
_bp = sa.bindparam

_STATE_COLUMNS = ('resource_type', 'resource_id', 'project_id', 'user_id',
                  'started_at', 'ended_at', 'last_seen', 'last_absent_at',
                  'missed_since', 'misses', 'sequence', 'review_at',
                  'attributes', 'timeline', 'emitted')
_WINDOW_COLUMNS = ('resource_id', 'meter', 'window_start', 'resource_type',
                   'window_end', 'unit', 'project_id', 'user_id', 'due_at',
                   'live', 'sig', 'samples')
_CYCLE_COLUMNS = ('cycle_id', 'resource_type', 'seen', 'listed',
                  'started_at', 'marker_at', 'applied_at')


def _cols(table, names):
    return [table.c[name] for name in names]


def _binds(names):
    return {name: _bp(name) for name in names}


class _Statements:
    """Compiled once per dialect, sent through the intake's DBAPI cursor."""

    def __init__(self, dialect):
        def raw(statement, keys):
            return ledger_mod.RawStatement(statement, dialect, keys)

        self_state = ((_state.c.resource_type == _bp('k_type'))
                      & (_state.c.resource_id == _bp('k_id')))
        state_cols = list(_STATE_COLUMNS[2:]) + ['updated_at']
        self.select_state = raw(
            sa.select(*_cols(_state, _STATE_COLUMNS)).where(self_state),
            ['k_type', 'k_id'])
        self.insert_state = raw(
            sa.insert(_state).values(**_binds(
                list(_STATE_COLUMNS) + ['updated_at'])),
            list(_STATE_COLUMNS) + ['updated_at'])
        self.update_state = raw(
            sa.update(_state).where(self_state).values(**_binds(state_cols)),
            state_cols + ['k_type', 'k_id'])
        sighting_cols = ['last_seen', 'misses', 'missed_since', 'updated_at']
        self.update_sighting = raw(
            sa.update(_state).where(self_state)
            .values(**_binds(sighting_cols)),
            sighting_cols + ['k_type', 'k_id'])
        self.absence_candidates = raw(
            sa.select(_state.c.resource_id)
            .where(_state.c.resource_type == _bp('k_type'))
            .where(_state.c.started_at.is_not(None))
            .where(_state.c.started_at < _bp('k_started'))
            .where(_state.c.ended_at.is_(None))
            .where(sa.or_(_state.c.last_seen.is_(None),
                          _state.c.last_seen < _bp('k_started'))),
            ['k_type', 'k_started'])
        self.due_reviews = raw(
            sa.select(_state.c.resource_type, _state.c.resource_id)
            .where(_state.c.review_at <= _bp('k_now')), ['k_now'])

        this_window = ((_windows.c.resource_id == _bp('k_id'))
                       & (_windows.c.meter == _bp('k_meter'))
                       & (_windows.c.window_start == _bp('k_start')))
        self.select_window = raw(
            sa.select(*_cols(_windows, _WINDOW_COLUMNS)).where(this_window),
            ['k_id', 'k_meter', 'k_start'])
        self.insert_window = raw(
            sa.insert(_windows).values(**_binds(_WINDOW_COLUMNS)),
            list(_WINDOW_COLUMNS))
        window_cols = ['due_at', 'live', 'sig', 'samples', 'project_id',
                       'user_id', 'unit']
        self.update_window = raw(
            sa.update(_windows).where(this_window)
            .values(**_binds(window_cols)),
            window_cols + ['k_id', 'k_meter', 'k_start'])
        self.due_windows_of = raw(
            sa.select(*_cols(_windows, _WINDOW_COLUMNS))
            .where(_windows.c.resource_id == _bp('k_id'))
            .where(_windows.c.meter == _bp('k_meter'))
            .where(_windows.c.due_at <= _bp('k_now')),
            ['k_id', 'k_meter', 'k_now'])
        self.due_windows = raw(
            sa.select(*_cols(_windows, _WINDOW_COLUMNS))
            .where(_windows.c.due_at <= _bp('k_now')), ['k_now'])

        this_cycle = _cycles.c.cycle_id == _bp('k_cycle')
        self.select_cycle = raw(
            sa.select(*_cols(_cycles, _CYCLE_COLUMNS)).where(this_cycle),
            ['k_cycle'])
        self.count_cycle = raw(
            sa.update(_cycles).where(this_cycle)
            .values(seen=_cycles.c.seen + sa.literal_column('1')),
            ['k_cycle'])
        self.insert_cycle = raw(
            sa.insert(_cycles).values(**_binds(
                list(_CYCLE_COLUMNS) + ['created_at'])),
            list(_CYCLE_COLUMNS) + ['created_at'])
        marker_cols = ['listed', 'started_at', 'marker_at']
        self.mark_cycle = raw(
            sa.update(_cycles).where(this_cycle)
            .values(**_binds(marker_cols)), marker_cols + ['k_cycle'])
        self.apply_cycle = raw(
            sa.update(_cycles).where(this_cycle)
            .values(applied_at=_bp('applied_at')),
            ['applied_at', 'k_cycle'])


class ReconcileStore:
    """Loads, applies and saves; see the module docstring.

    :param settings: :class:`reconcile.Settings`.
    """

    def __init__(self, ledger, definitions, settings, counters=None):
        self.ledger = ledger
        self.settings = settings
        #: :class:`metrics.Counters` for billing events by origin, or None.
        self.counters = counters
        self._local = threading.local()
        self.observer = observations.Observer(definitions)
        self.reconciler = reconcile.Reconciler(settings, {
            rtype.name: rtype.all_attributes
            for rtype in definitions.types.values()})
        self._sql = None

    @property
    def sql(self):
        if self._sql is None:
            self._sql = _Statements(self.ledger.engine.dialect)
        return self._sql

    def wants(self, record):
        return self.observer.wants(record)

    def apply(self, cursor, record, now):
        """Reconcile one accepted record; returns how many billing events
        it caused. Raises ``MalformedItem`` for input billing cannot use
        (the caller quarantines it)."""
        emitted = 0
        for item in self.observer.observe(record):
            if isinstance(item, observations.Sighting):
                events = self._sighting(cursor, item, now)
            elif isinstance(item, reconcile.Observation):
                events = self._observation(cursor, item, now)
            elif isinstance(item, observations.UsageSample):
                events = self._usage(cursor, item, now)
            else:
                events = self._marker(cursor, item, now)
            emitted += self._emit(cursor, events, now)
        return emitted

    # -- resources -----------------------------------------------------

    def _observation(self, cursor, obs, now):
        row = self._row(cursor, obs.resource_type, obs.resource_id)
        return self._observe(cursor, row, obs, now)

    def _sighting(self, cursor, sighting, now):
        obs = sighting.observation
        row = self._row(cursor, obs.resource_type, obs.resource_id)
        light = _light_state(row) if row is not None else None
        if light is not None and self.reconciler.is_routine_sighting(
                light, obs):
            # The common case, every polling cycle for every resource:
            # only last_seen moves.
            self.reconciler.record_sighting(light, obs.at)
            self._save_sighting(cursor, light, now)
            events = []
        else:
            events = self._observe(cursor, row, obs, now)
        if sighting.cycle_id:
            events += self._count_in_cycle(cursor, sighting, now)
        return events

    def _observe(self, cursor, row, obs, now):
        """Apply ``obs`` to the state in ``row`` (None: a new resource)
        and write back what changed."""
        if row is None:
            state = reconcile.ResourceState(obs.resource_type,
                                            obs.resource_id)
            events = self.reconciler.observe(state, obs, now)
            self._save(cursor, state, True, now)
            return events
        state = _full_state(row)
        kept = (len(state.timeline), state.review_at, state.project_id,
                state.user_id)
        events = self.reconciler.observe(state, obs, now)
        if events or kept != (len(state.timeline), state.review_at,
                              state.project_id, state.user_id):
            self._save(cursor, state, False, now)
        else:
            # Nothing new (a sighting that told nothing, an observation
            # already in the timeline): only what a sighting moves.
            self._save_sighting(cursor, state, now)
        return events

    def _save_sighting(self, cursor, state, now):
        """Write only what a sighting that told nothing new changes."""
        sql = self.sql.update_sighting
        cursor.execute(sql.sql, sql.params({
            'last_seen': state.last_seen, 'misses': state.misses,
            'missed_since': state.missed_since, 'updated_at': now,
            'k_type': state.resource_type, 'k_id': state.resource_id}))

    def _row(self, cursor, resource_type, resource_id):
        sql = self.sql.select_state
        cursor.execute(sql.sql, sql.params({'k_type': resource_type,
                                            'k_id': resource_id}))
        return cursor.fetchone()

    def _load(self, cursor, resource_type, resource_id):
        row = self._row(cursor, resource_type, resource_id)
        if row is None:
            return reconcile.ResourceState(resource_type, resource_id), True
        return _full_state(row), False

    def _save(self, cursor, state, is_new, now):
        values = {
            'resource_type': state.resource_type,
            'resource_id': state.resource_id,
            'project_id': state.project_id, 'user_id': state.user_id,
            'started_at': state.started_at, 'ended_at': state.ended_at,
            'last_seen': state.last_seen,
            'last_absent_at': state.last_absent_at,
            'missed_since': state.missed_since, 'misses': state.misses,
            'sequence': state.sequence, 'review_at': state.review_at,
            'attributes': json.dumps(state.attributes),
            'timeline': json.dumps(state.timeline),
            'emitted': json.dumps(state.emitted), 'updated_at': now}
        if is_new:
            sql = self.sql.insert_state
        else:
            sql = self.sql.update_state
            values['k_type'] = values['resource_type']
            values['k_id'] = values['resource_id']
        cursor.execute(sql.sql, sql.params(values))

    # -- inventory cycles ----------------------------------------------

    def _count_in_cycle(self, cursor, sighting, now):
        sql = self.sql
        cursor.execute(sql.count_cycle.sql,
                       sql.count_cycle.params({'k_cycle': sighting.cycle_id}))
        if cursor.rowcount == 0:
            cursor.execute(sql.insert_cycle.sql, sql.insert_cycle.params({
                'cycle_id': sighting.cycle_id,
                'resource_type': sighting.observation.resource_type,
                'seen': 1, 'listed': None, 'started_at': None,
                'marker_at': None, 'applied_at': None, 'created_at': now}))
        return self._apply_if_complete(cursor, sighting.cycle_id, now)

    def _marker(self, cursor, marker, now):
        sql = self.sql
        values = {'listed': marker.listed, 'started_at': marker.started_at,
                  'marker_at': marker.at}
        cursor.execute(sql.mark_cycle.sql, sql.mark_cycle.params(
            dict(values, k_cycle=marker.cycle_id)))
        if cursor.rowcount == 0:
            cursor.execute(sql.insert_cycle.sql, sql.insert_cycle.params(
                dict(values, cycle_id=marker.cycle_id,
                     resource_type=marker.resource_type, seen=0,
                     applied_at=None, created_at=now)))
        return self._apply_if_complete(cursor, marker.cycle_id, now)

    def _apply_if_complete(self, cursor, cycle_id, now):
        sql = self.sql
        cursor.execute(sql.select_cycle.sql,
                       sql.select_cycle.params({'k_cycle': cycle_id}))
        (_cycle_id, resource_type, seen, listed, started_at, _marker_at,
         applied_at) = cursor.fetchone()
        if applied_at is not None or listed is None or seen < listed:
            return []
        # Complete: the marker and every sample it counts are here, so
        # whatever was not seen since the listing began is absent.
        cursor.execute(sql.apply_cycle.sql, sql.apply_cycle.params(
            {'applied_at': now, 'k_cycle': cycle_id}))
        cursor.execute(sql.absence_candidates.sql,
                       sql.absence_candidates.params({
                           'k_type': resource_type,
                           'k_started': started_at}))
        missing = [row[0] for row in cursor.fetchall()]
        events = []
        for resource_id in missing:
            state, _new = self._load(cursor, resource_type, resource_id)
            events += self.reconciler.absent(state, cycle_id, started_at,
                                             now)
            self._save(cursor, state, False, now)
        if missing:
            LOG.info('Inventory cycle %s of %s complete (%d listed); %d '
                     'known resources missing from it', cycle_id,
                     resource_type, listed, len(missing))
        return events

    # -- usage ---------------------------------------------------------

    def _usage(self, cursor, sample, now):
        sql = self.sql
        start, end = usage.bounds(sample.at, sample.window)
        key = {'k_id': sample.resource_id, 'k_meter': sample.meter,
               'k_start': start}
        cursor.execute(sql.select_window.sql, sql.select_window.params(key))
        row = cursor.fetchone()
        if row is None:
            window = usage.UsageWindow(
                sample.resource_type, sample.resource_id, sample.meter,
                start, end, unit=sample.unit, project_id=sample.project_id,
                user_id=sample.user_id)
            usage.add_sample(window, sample.at, sample.volume,
                             sample.evidence)
            self._save_window(cursor, window, True)
        else:
            window = _window(row)
            if not usage.add_sample(window, sample.at, sample.volume,
                                    sample.evidence):
                return []
            if window.finalized:
                # Late: the usage sent for this window is corrected now.
                return self._finalize(cursor, [window], now)
            self._save_window(cursor, window, False)
        # Windows of this meter closed long enough before this sample's
        # time are final: event time moves them as well as the clock.
        return self._finalize_due(cursor, sql.due_windows_of, dict(
            k_id=sample.resource_id, k_meter=sample.meter,
            k_now=max(now, sample.at)), now)

    def _finalize_due(self, cursor, statement, params, now, limit=None):
        cursor.execute(statement.sql, statement.params(params))
        rows = cursor.fetchmany(limit) if limit else cursor.fetchall()
        return self._finalize(cursor, [_window(row) for row in rows], now)

    def _finalize(self, cursor, windows, now):
        events = []
        for window in windows:
            state, is_new = self._load(cursor, window.resource_type,
                                       window.resource_id)
            state.project_id = state.project_id or window.project_id
            state.user_id = state.user_id or window.user_id
            events += usage.finalize(window, state, self.settings, now)
            self._save(cursor, state, is_new, now)
            self._save_window(cursor, window, False)
        return events

    def _save_window(self, cursor, window, is_new):
        due_at = None if window.finalized else (
            window.window_end + self.settings.usage_grace)
        values = {'due_at': due_at, 'live': window.live,
                  'sig': json.dumps(window.sig) if window.sig else None,
                  'samples': json.dumps(window.samples),
                  'project_id': window.project_id,
                  'user_id': window.user_id, 'unit': window.unit}
        if is_new:
            sql = self.sql.insert_window
            values.update(resource_id=window.resource_id,
                          meter=window.meter,
                          window_start=window.window_start,
                          resource_type=window.resource_type,
                          window_end=window.window_end)
        else:
            sql = self.sql.update_window
            values.update(k_id=window.resource_id, k_meter=window.meter,
                          k_start=window.window_start)
        cursor.execute(sql.sql, sql.params(values))

    # -- output --------------------------------------------------------

    def _emitted(self):
        """This thread's billing events of its open transaction."""
        if getattr(self._local, 'events', None) is None:
            self._local.events = []
        return self._local.events

    def committed(self):
        """The caller's transaction committed: count its events."""
        events, self._local.events = self._emitted(), []
        if self.counters is not None:
            for origin, event_type in events:
                self.counters.add(metrics.series(
                    metrics.BILLING_EVENTS, origin=origin, type=event_type))

    def rolled_back(self):
        self._local.events = []

    def _emit(self, cursor, events, now):
        insert = self.ledger.statements.insert_outbox
        self._emitted().extend((e.origin, e.event_type) for e in events)
        for event in events:
            cursor.execute(insert.sql, insert.params({
                'dedup_key': event.id, 'content': normalize.CONTENT_BILLING,
                'kind': billing.KIND, 'item_id': event.id,
                'event_type': event.event_type,
                'project_id': event.project_id, 'created_at': now,
                'payload': event.to_json()}))
        return len(events)

    # -- housekeeping --------------------------------------------------

    def review(self, now, chunk=500):
        """Emit facts whose settle time has passed and finalize usage
        windows that are due; returns how many billing events."""
        total = 0
        while True:
            try:
                emitted, keys, events = self._review_chunk(now, chunk)
            except Exception:
                self.rolled_back()
                raise
            self.committed()
            total += emitted
            if len(keys) < chunk and len(events) < chunk:
                return total

    def _review_chunk(self, now, chunk):
        with self.ledger.raw_transaction() as cursor:
            sql = self.sql
            cursor.execute(sql.due_reviews.sql, sql.due_reviews.params(
                {'k_now': now}))
            keys = cursor.fetchmany(chunk)
            emitted = 0
            for resource_type, resource_id in keys:
                state, _new = self._load(cursor, resource_type, resource_id)
                events = self.reconciler.settle(state, now)
                self._save(cursor, state, False, now)
                emitted += self._emit(cursor, events, now)
            events = self._finalize_due(cursor, sql.due_windows, {
                'k_now': now}, now, limit=chunk)
            emitted += self._emit(cursor, events, now)
        return emitted, keys, events

    @ledger_mod.translate_errors
    def prune(self, now, retention):
        """Forget resources ended, windows finalized and cycles begun more
        than ``retention`` seconds ago; returns how many rows."""
        before = now - retention
        with self.ledger.begin_writer() as conn:
            return sum(conn.execute(statement).rowcount for statement in (
                sa.delete(_state).where(_state.c.ended_at < before)
                .where(_state.c.review_at.is_(None)),
                sa.delete(_windows).where(_windows.c.window_end < before)
                .where(_windows.c.due_at.is_(None)),
                sa.delete(_cycles).where(_cycles.c.created_at < before)))


@ledger_mod.translate_errors
def status(ledger):
    """Counts for ``scs-publisher status``."""
    count = sa.func.count
    with ledger.read() as conn:
        return {
            'resources': conn.execute(sa.select(count()).select_from(
                _state).where(_state.c.started_at.is_not(None)))
            .scalar(),
            'active': conn.execute(sa.select(count()).select_from(
                _state).where(_state.c.started_at.is_not(None))
                .where(_state.c.ended_at.is_(None))).scalar(),
            'settling': conn.execute(sa.select(count()).select_from(
                _state).where(_state.c.review_at.is_not(None)))
            .scalar(),
            'open_usage_windows': conn.execute(
                sa.select(count()).select_from(_windows)
                .where(_windows.c.due_at.is_not(None))).scalar(),
        }


def _light_state(row):
    """A state with what a routine sighting needs; timeline not decoded."""
    values = dict(zip(_STATE_COLUMNS, row))
    return reconcile.ResourceState(
        resource_type=values['resource_type'],
        resource_id=values['resource_id'],
        attributes=json.loads(values['attributes']),
        started_at=values['started_at'], ended_at=values['ended_at'],
        last_seen=values['last_seen'],
        last_absent_at=values['last_absent_at'],
        missed_since=values['missed_since'], misses=values['misses'],
        review_at=values['review_at'])


def _full_state(row):
    values = dict(zip(_STATE_COLUMNS, row))
    for name in ('attributes', 'timeline', 'emitted'):
        values[name] = json.loads(values[name])
    return reconcile.ResourceState(**values)


def _window(row):
    values = dict(zip(_WINDOW_COLUMNS, row))
    values['samples'] = json.loads(values['samples'])
    values['sig'] = json.loads(values['sig']) if values['sig'] else None
    del values['due_at']
    return usage.UsageWindow(**values)
