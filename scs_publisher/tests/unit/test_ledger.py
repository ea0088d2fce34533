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
"""The ledger, the intake and a sink's queue, on SQLite, MariaDB and
PostgreSQL (the servers on 127.0.0.1; those cases skip outside CI when the
server is not there)."""

import os
import stat
import subprocess
import threading
import time

import sqlalchemy as sa

from scs_publisher import intake as intake_mod
from scs_publisher import ledger as ledger_mod
from scs_publisher import normalize
from scs_publisher import sink_queue
from scs_publisher.tests import base


class LedgerCases(base.BackendMixin):

    def setUp(self):
        super().setUp()
        self.ledger = ledger_mod.Ledger(self.ledger_url())
        self.addCleanup(self.ledger.dispose)
        self.intake = intake_mod.Intake(self.ledger)

    def rows(self, table):
        with self.ledger.begin() as conn:
            return conn.execute(sa.select(table)).all()

    # -- intake ------------------------------------------------------------

    def test_intake_drops_duplicates_across_and_within_calls(self):
        a, b = base.record('a'), base.record('b')
        result = self.intake.accept([a, b, a])
        self.assertEqual((2, 1), (result.accepted, result.duplicates))
        result = self.intake.accept([b, base.record('c')])
        self.assertEqual((1, 1), (result.accepted, result.duplicates))
        self.assertEqual(['a', 'b', 'c'],
                         [r.item_id for r in self.rows(ledger_mod.outbox)])

    def test_real_records_fit_the_schema(self):
        from scs_publisher.tests.unit import test_normalize
        records = [normalize.sample_record(test_normalize.make_sample()),
                   normalize.event_record(test_normalize.make_event())]
        self.assertEqual(2, self.intake.accept(records).accepted)
        self.assertEqual(0, self.intake.accept(records).accepted)

    def test_intake_records_quarantine(self):
        self.intake.accept([], [('event', 'no message_id', '<Event>')])
        (row,) = self.rows(ledger_mod.quarantine)
        self.assertEqual(('event', 'no message_id'), (row.kind, row.reason))

    def test_concurrent_intake_of_the_same_keys_accepts_each_once(self):
        keys = ['k%d' % i for i in range(60)]
        errors = []

        def worker():
            try:
                for key in keys:
                    self.intake.accept([base.record(key)])
            except Exception as exc:  # reported below
                errors.append(exc)
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([], errors)
        self.assertEqual(sorted(keys), sorted(
            r.item_id for r in self.rows(ledger_mod.outbox)))

    def test_concurrent_callers_share_one_commit(self):
        commits = []
        original = self.ledger.raw_transaction

        def counting():
            commits.append(1)
            return original()
        self.ledger.raw_transaction = counting
        results = {}

        def call(key):
            results[key] = self.intake.accept([base.record(key),
                                               base.record('shared')])
        # While one commit is under way, five callers queue up...
        with self.intake._commit_lock:
            threads = [threading.Thread(target=call, args=('k%d' % i,))
                       for i in range(5)]
            for t in threads:
                t.start()
            base.wait_until(lambda: len(self.intake._queue) == 5, 10,
                            message='five queued callers')
        for t in threads:
            t.join()
        # ...and the first to get the lock commits them all at once.
        self.assertEqual(1, len(commits))
        self.assertEqual(6, len(self.rows(ledger_mod.outbox)))
        self.assertEqual(6, sum(r.accepted for r in results.values()))
        self.assertEqual(4, sum(r.duplicates for r in results.values()))

    def test_a_failed_group_commit_fails_every_caller(self):
        self.ledger.raw_transaction = _failing_transaction
        self.assertRaises(ledger_mod.LedgerUnavailable, self.intake.accept,
                          [base.record('b')])

    def test_schema_is_versioned_and_upgrade_is_idempotent(self):
        self.ledger.engine
        again = ledger_mod.Ledger(self.ledger.url)
        self.addCleanup(again.dispose)
        with again.begin() as conn:
            self.assertEqual(len(ledger_mod.MIGRATIONS),
                             ledger_mod._schema_version(conn))

    # -- expiry ------------------------------------------------------------

    def test_prune_expires_delivered_items_by_marks(self):
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        self.intake.accept([base.record('old-1'), base.record('old-2')])
        self.ledger.mark(1000.0)
        self.intake.accept([base.record('new')])
        batch = queue.head('me', 10, 60)
        queue.dead_letter('me', batch, batch.items[:1], 'refused')
        # old-1 is a dead letter, old-2 delivered, new delivered too but
        # younger than the retention.
        items = self.ledger.prune(1000.0 + 50, dedup_retention=10,
                                  outbox_retention=5, sinks=['hook'])
        self.assertEqual(1, items)
        self.assertEqual(['old-1', 'new'],
                         [r.item_id for r in self.rows(ledger_mod.outbox)])
        # A key that expired is accepted again.
        self.assertEqual(1, self.intake.accept([base.record('old-2')])
                         .accepted)

    def test_prune_keeps_items_a_sink_has_not_passed(self):
        self.intake.accept([base.record('x')])
        self.ledger.mark(1000.0)
        self.assertEqual(0, self.ledger.prune(2000.0, 10, 10,
                                              sinks=['slow']))

    def test_dedup_retention_outlasts_a_shorter_outbox_retention(self):
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        self.intake.accept([base.record('a')])
        self.ledger.mark(1000.0)
        queue.complete('me', queue.head('me', 10, 60), 1)
        self.assertEqual(0, self.ledger.prune(1000.0 + 50, dedup_retention=100,
                                              outbox_retention=10,
                                              sinks=['hook']))
        self.assertEqual(0, self.intake.accept([base.record('a')]).accepted)

    # -- a sink's queue ------------------------------------------------------

    def test_batch_is_frozen_until_it_is_handled(self):
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        self.intake.accept([base.record('a'), base.record('b')])
        first = queue.head('me', 10, 60)
        self.intake.accept([base.record('c')])
        queue.fail('me', first, 'HTTP 503', time.time() + 5)
        again = queue.head('me', 10, 60)
        self.assertEqual(['a', 'b'], [i.item_id for i in again.items])
        self.assertEqual(1, again.attempts)
        queue.complete('me', again, 2)
        self.assertEqual(['c'], [i.item_id
                                 for i in queue.head('me', 10, 60).items])

    def test_only_matching_content_is_queued(self):
        queue = sink_queue.SinkQueue(self.ledger, 'bill', 'billing')
        self.intake.accept([base.record('raw-item'),
                            base.record('bill-item', content='billing')])
        self.assertEqual(['bill-item'],
                         [i.item_id for i in queue.head('me', 10, 60).items])

    def test_lease_excludes_a_second_dispatcher_until_it_expires(self):
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        self.intake.accept([base.record('a')])
        batch = queue.head('one', 10, 0.5)
        self.assertRaises(sink_queue.LeaseHeld, queue.head, 'two', 10, 60)
        base.wait_until(lambda: _takes(queue, 'two'), 5, 0.1,
                        'the lease to expire')
        # The first dispatcher lost its lease: it cannot move the cursor.
        self.assertRaises(sink_queue.LeaseLost, queue.complete, 'one',
                          batch, 1)
        self.assertEqual(0, queue.status().delivered)

    def test_lease_of_a_dead_process_on_this_host_is_taken_at_once(self):
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        self.intake.accept([base.record('a')])
        gone = subprocess.Popen(['true'])
        gone.wait()
        queue.head(sink_queue.lease_owner(gone.pid), 10, 3600)
        batch = queue.head(sink_queue.lease_owner(), 10, 60)
        self.assertEqual(['a'], [i.item_id for i in batch.items])
        # A live holder keeps it.
        alive = sink_queue.lease_owner()
        self.assertRaises(sink_queue.LeaseHeld, queue.head, alive, 10, 60)

    def test_shrink_narrows_the_batch(self):
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        self.intake.accept([base.record(k) for k in 'abcd'])
        batch = queue.head('me', 10, 60)
        queue.shrink('me', batch, batch.items[1].id)
        self.assertEqual(['a', 'b'],
                         [i.item_id for i in queue.head('me', 10, 60).items])

    def test_dead_letters_and_their_replay(self):
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        self.intake.accept([base.record('bad'), base.record('good')])
        batch = queue.head('me', 1, 60)
        queue.dead_letter('me', batch, batch.items, 'HTTP 422', 422,
                          '{"error": "no"}')
        (dead,) = queue.dead_letter_list()
        self.assertEqual(('bad', 422, '{"error": "no"}'),
                         (dead.item_id, dead.status_code, dead.response))
        queue.complete('me', queue.head('me', 1, 60), 1)
        self.assertEqual(1, queue.replay_dead_letters())
        self.assertEqual([], queue.dead_letter_list())
        replayed = queue.head('me', 10, 60)
        self.assertEqual((sink_queue.SOURCE_REPLAY, ['bad']),
                         (replayed.source,
                          [i.item_id for i in replayed.items]))
        queue.complete('me', replayed, 1)
        status = queue.status()
        self.assertEqual((0, 2, 0), (status.pending, status.delivered,
                                     status.dead_letters))

    def test_replay_range_sends_delivered_items_again(self):
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        before = time.time()
        self.intake.accept([base.record('a'), base.record('b')])
        queue.complete('me', queue.head('me', 10, 60), 2)
        self.assertEqual(2, queue.replay_range(before - 1, time.time() + 1))
        self.assertEqual(0, queue.replay_range(0, before - 1))
        self.assertEqual(['a', 'b'],
                         [i.item_id for i in queue.head('me', 10, 60).items])

    def test_status_counts_pending_and_age(self):
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        self.intake.accept([base.record('a'), base.record('b')])
        status = queue.status()
        self.assertEqual(2, status.pending)
        self.assertGreaterEqual(status.oldest_pending_age, 0)


def _failing_transaction():
    raise ledger_mod.LedgerUnavailable('disk full')


def _takes(queue, owner):
    try:
        queue.head(owner, 10, 60)
        return True
    except sink_queue.LeaseHeld:
        return False


class SqliteLedgerTest(LedgerCases, base.TestCase):
    backend = 'sqlite'

    def test_files_are_private(self):
        self.intake.accept([base.record('a')])
        path = self.ledger.url.database
        self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))
        self.assertEqual(0o600, stat.S_IMODE(os.stat(path + '-wal')
                                             .st_mode))

    def test_unreachable_ledger_raises_ledger_unavailable(self):
        os.chmod(self.tmp, 0o500)
        self.addCleanup(os.chmod, self.tmp, 0o700)
        broken = ledger_mod.Ledger('sqlite:///' + os.path.join(
            self.tmp, 'sub', 'ledger.sqlite'))
        if os.geteuid() == 0:
            # root writes anywhere: point at a directory instead of a file.
            broken = ledger_mod.Ledger('sqlite:///' + self.tmp)
        self.assertRaises(ledger_mod.LedgerUnavailable,
                          intake_mod.Intake(broken).accept,
                          [base.record('a')])


class MysqlLedgerTest(LedgerCases, base.TestCase):
    backend = 'mysql'


class PostgresqlLedgerTest(LedgerCases, base.TestCase):
    backend = 'postgresql'
