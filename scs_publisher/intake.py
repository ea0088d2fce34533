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
"""The intake step: one ledger transaction per batch of records.

It appends the records to the outbox, where a record whose dedup key is
already there inserts nothing, and for each new record that tells
something about a billable resource applies the reconciler (see
:mod:`scs_publisher.reconcile_store`), in one commit, so a record and the
billing events it causes are either fully accepted or not at all. It runs
once per notification, so it uses the ledger's precompiled statements (see
``Ledger.raw_transaction``).
"""

import threading
import time

from oslo_log import log

from scs_publisher import ledger as ledger_mod
from scs_publisher import metrics
from scs_publisher import normalize

LOG = log.getLogger(__name__)


class IntakeResult:
    __slots__ = ('accepted', 'duplicates', 'billing_events')

    def __init__(self, accepted=0, duplicates=0, billing_events=0):
        self.accepted = accepted
        self.duplicates = duplicates
        self.billing_events = billing_events


class _Request:
    """One caller's records, waiting to be committed by whichever caller
    leads the next group commit."""
    __slots__ = ('records', 'quarantined', 'result', 'error', 'done')

    def __init__(self, records, quarantined):
        self.records = records
        self.quarantined = quarantined
        self.result = None
        self.error = None
        self.done = False


class Intake:
    """Commits records for many threads, grouping concurrent callers.

    Ceilometer calls publishers from up to 64 threads per process, one
    notification per call. Callers queue their records; the one that gets
    the commit lock commits every queued request in one transaction, and
    the others find theirs done when the lock comes to them. Each caller
    still returns only after its own records are committed.
    """

    def __init__(self, ledger, reconcile_store=None, counters=None):
        self.ledger = ledger
        #: :class:`~scs_publisher.metrics.Counters` (duplicates), or None.
        self.counters = counters
        #: :class:`~scs_publisher.reconcile_store.ReconcileStore`, or None
        #: when billing events are not derived (no usable definitions).
        self.reconcile_store = reconcile_store
        self._queue = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()

    def accept(self, records, quarantined=()):
        """Commit ``records`` (deduplicated) and ``quarantined`` entries.

        :param quarantined: ``(kind, reason, excerpt)`` tuples.
        :returns: :class:`IntakeResult`
        :raises LedgerUnavailable: nothing of this call was committed.
        """
        request = _Request(records, quarantined)
        with self._queue_lock:
            self._queue.append(request)
        with self._commit_lock:
            if not request.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._commit(group)
        if isinstance(request.error, ledger_mod.LedgerUnavailable):
            # One instance per caller: each raise gets its own traceback.
            raise ledger_mod.LedgerUnavailable(str(request.error)) \
                from request.error
        if request.error is not None:
            raise request.error
        return request.result

    def _commit(self, group):
        now = time.time()
        sql = self.ledger.statements
        insert = sql.insert_outbox
        store = self.reconcile_store
        fresh = [0] * len(group)
        billing = [0] * len(group)
        try:
            with self.ledger.raw_transaction() as cursor:
                for index, request in enumerate(group):
                    quarantined = list(request.quarantined)
                    for record in request.records:
                        # The unique dedup_key makes this insert nothing for
                        # an item accepted before, in any call.
                        cursor.execute(insert.sql, insert.params({
                            'dedup_key': record.dedup_key,
                            'content': record.content, 'kind': record.kind,
                            'item_id': record.item_id,
                            'event_type': record.event_type,
                            'project_id': record.project_id,
                            'created_at': now, 'payload': record.payload}))
                        if cursor.rowcount != 1:
                            continue  # seen before: reconciled before
                        fresh[index] += 1
                        if store is not None and store.wants(record):
                            billing[index] += self._reconcile(
                                cursor, record, now, quarantined)
                    if quarantined:
                        cursor.executemany(sql.insert_quarantine.sql, [
                            sql.insert_quarantine.params({
                                'kind': kind, 'reason': reason,
                                'excerpt': excerpt, 'quarantined_at': now})
                            for kind, reason, excerpt in quarantined])
        except Exception as exc:
            if store is not None:
                store.rolled_back()
            for request in group:
                request.error = exc
                request.done = True
            return
        if store is not None:
            store.committed()
        if self.counters is not None:
            self.counters.add(metrics.DUPLICATES, sum(
                len(r.records) for r in group) - sum(fresh))
        for request, accepted, events in zip(group, fresh, billing):
            request.result = IntakeResult(
                accepted, len(request.records) - accepted, events)
            request.done = True

    def _reconcile(self, cursor, record, now, quarantined):
        """Billing events for one fresh record, in the same transaction.
        Input billing cannot use is quarantined; the record itself stays
        accepted (raw sinks still get it)."""
        try:
            return self.reconcile_store.apply(cursor, record, now)
        except normalize.MalformedItem as exc:
            reason = str(exc)
        except self.ledger.dbapi_error:
            raise
        except Exception as exc:
            # A bug in the rules must not stop the intake: the item is
            # kept for an operator, with the error.
            LOG.exception('Reconciling %s %s failed', record.kind,
                          record.item_id)
            reason = 'reconciler error: %s: %s' % (type(exc).__name__, exc)
        LOG.warning('Quarantined %s %s for billing: %s', record.kind,
                    record.item_id, reason)
        quarantined.append((record.kind, reason, record.payload[:1000]))
        return 0
