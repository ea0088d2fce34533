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
"""Reconciler state in a real ledger, through the intake: SQLite, MariaDB
and PostgreSQL."""

import datetime
import json
import threading
import time
import uuid

from ceilometer.event import models
from ceilometer import sample as sample_mod
import sqlalchemy as sa

from scs_publisher import billing
from scs_publisher import billing_stream
from scs_publisher import intake as intake_mod
from scs_publisher import ledger as ledger_mod
from scs_publisher import normalize
from scs_publisher import observations
from scs_publisher import reconcile
from scs_publisher import reconcile_store
from scs_publisher import resource_definitions
from scs_publisher.tests import base

DAY0 = datetime.datetime(2026, 12, 1, 8, 0, 0)


def hours(n):
    return DAY0 + datetime.timedelta(hours=n)


def in_future(n):
    """Usage windows close by event time and by the clock: these tests
    use hours ahead of the clock, so only event time moves them."""
    now = datetime.datetime.utcnow().replace(minute=0, second=0,
                                             microsecond=0)
    return now + datetime.timedelta(hours=10 + n)


def epoch(moment):
    return billing.parse_time(moment.isoformat())


def trait(name, value):
    if isinstance(value, datetime.datetime):
        return models.Trait(name, models.Trait.DATETIME_TYPE, value)
    if isinstance(value, int):
        return models.Trait(name, models.Trait.INT_TYPE, value)
    return models.Trait(name, models.Trait.TEXT_TYPE, value)


def volume_event(event_type, volume_id, when, size=10, created=None,
                 message_id=None, project='p1'):
    traits = [trait('resource_id', volume_id), trait('project_id', project),
              trait('user_id', 'u1'), trait('size', size),
              trait('type', 'ssd'), trait('created_at', created or when)]
    event = models.Event(message_id or str(uuid.uuid4()), event_type, when,
                         traits, {})
    return normalize.event_record(event)


def sample(meter, resource_id, when, volume, metadata=None, project='p1',
           unit='GiB', sample_id=None):
    item = sample_mod.Sample(
        name=meter, type='gauge', unit=unit, volume=volume, user_id='u1',
        project_id=project, resource_id=resource_id,
        timestamp=when.isoformat(), resource_metadata=metadata or {},
        id=sample_id or str(uuid.uuid4()))
    return normalize.sample_record(item)


class StoreTestBase(base.BackendMixin, base.TestCase):

    settle = 0

    def setUp(self):
        super().setUp()
        self.ledger = ledger_mod.Ledger(self.ledger_url())
        self.addCleanup(self.ledger.dispose)
        self.settings = reconcile.Settings(source='Test', settle=self.settle,
                                           usage_grace=600)
        self.store = reconcile_store.ReconcileStore(
            self.ledger, resource_definitions.load(), self.settings)
        self.intake = intake_mod.Intake(self.ledger, self.store)

    def accept(self, *records):
        return self.intake.accept(list(records))

    def billing(self):
        with self.ledger.read() as conn:
            rows = conn.execute(
                sa.select(ledger_mod.outbox.c.payload)
                .where(ledger_mod.outbox.c.content == 'billing')
                .order_by(ledger_mod.outbox.c.id)).scalars()
            return [json.loads(row) for row in rows]

    def types(self):
        return [e['type'][len(billing.TYPE_PREFIX):] for e in self.billing()]


class StoreTest(StoreTestBase):

    def test_lifecycle_events_become_billing_events_in_the_outbox(self):
        result = self.accept(
            volume_event('volume.create.end', 'v1', hours(1)),
            volume_event('volume.resize.end', 'v1', hours(2), size=20,
                         created=hours(1)),
            volume_event('volume.delete.end', 'v1', hours(3), size=20,
                         created=hours(1)))
        self.assertEqual(3, result.billing_events)
        events = self.billing()
        self.assertEqual(['resource.started', 'resource.changed',
                          'resource.ended'], self.types())
        self.assertEqual({'size': 20, 'volume_type': 'ssd'},
                         events[1]['attributes'])
        self.assertEqual('2026-12-01T11:00:00Z', events[2]['ended_at'])
        self.assertEqual('2026-12-01T09:00:00Z', events[2]['started_at'])
        with self.ledger.read() as conn:
            row = conn.execute(sa.select(ledger_mod.resource_state)).one()
        self.assertEqual(('volume', 'v1', 'p1', 3),
                         (row.resource_type, row.resource_id,
                          row.project_id, row.sequence))
        self.assertEqual(epoch(hours(3)), row.ended_at)

    def test_redelivered_notification_is_reconciled_once(self):
        record = volume_event('volume.create.end', 'v1', hours(1))
        self.accept(record)
        result = self.accept(record)
        self.assertEqual((0, 1, 0), (result.accepted, result.duplicates,
                                     result.billing_events))
        self.assertEqual(['resource.started'], self.types())

    def test_two_processes_deriving_a_fact_store_it_once(self):
        """A second store (another process) sees the same create under
        another message id: same fact, same id, stored once."""
        self.accept(volume_event('volume.create.end', 'v1', hours(1)))
        other = intake_mod.Intake(self.ledger, reconcile_store.ReconcileStore(
            self.ledger, resource_definitions.load(), self.settings))
        other.accept([volume_event('volume.create.end', 'v1', hours(1))])
        self.assertEqual(['resource.started'], self.types())

    def test_concurrent_observations_of_one_resource(self):
        """Eight threads with their own intakes (as eight agent processes
        would have) send create, resizes and delete of the same volumes at
        once; every volume ends with one consistent lifecycle."""
        volumes = ['v%d' % n for n in range(10)]
        plan = []
        for volume in volumes:
            plan += [volume_event('volume.create.end', volume, hours(1)),
                     volume_event('volume.resize.end', volume, hours(2),
                                  size=20, created=hours(1)),
                     volume_event('volume.resize.end', volume, hours(3),
                                  size=30, created=hours(1)),
                     volume_event('volume.delete.end', volume, hours(4),
                                  size=30, created=hours(1))]
        errors = []

        def work(records):
            intake = intake_mod.Intake(
                self.ledger, reconcile_store.ReconcileStore(
                    self.ledger, resource_definitions.load(), self.settings))
            try:
                for record in records:
                    intake.accept([record])
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(plan[n::8],))
                   for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual([], errors)
        stream = billing_stream.BillingStream()
        for event in self.billing():
            self.assertTrue(stream.add(event), 'an id twice in the outbox')
        intervals = stream.intervals()
        for volume in volumes:
            self.assertEqual(
                [(epoch(hours(1)), epoch(hours(2)), 10),
                 (epoch(hours(2)), epoch(hours(3)), 20),
                 (epoch(hours(3)), epoch(hours(4)), 30)],
                [(i.start, i.end, i.attributes['size'])
                 for i in intervals[('volume', volume)]])

    def test_event_without_resource_id_is_quarantined_for_billing(self):
        event = models.Event('m1', 'volume.create.end', hours(1),
                             [trait('project_id', 'p1')], {})
        result = self.accept(normalize.event_record(event))
        self.assertEqual((1, 0), (result.accepted, result.billing_events))
        self.assertEqual(1, self.ledger.quarantined())
        with self.ledger.read() as conn:
            reason = conn.execute(sa.select(
                ledger_mod.quarantine.c.reason)).scalar()
        self.assertIn('resource_id', reason)

    def test_unrelated_items_cost_no_state(self):
        self.accept(sample('cpu', 'i1', hours(1), 5.0),
                    base.record(event_type='identity.authenticate'))
        with self.ledger.read() as conn:
            self.assertEqual(0, conn.execute(sa.select(sa.func.count())
                             .select_from(ledger_mod.resource_state))
                             .scalar())

    # -- polling ----------------------------------------------------------

    def test_polled_volume_unknown_before_starts_by_reconciliation(self):
        self.accept(sample('volume.size', 'v9', hours(5), 10,
                           {'volume_type': 'ssd'}))
        self.assertEqual(['resource.started'], self.types())
        started = self.billing()[0]
        self.assertEqual('reconciliation', started['origin'])
        self.assertEqual({'size': 10, 'volume_type': 'ssd'},
                         started['attributes'])

    def test_settle_holds_inferred_facts_until_review(self):
        self.settings = reconcile.Settings(source='Test', settle=300)
        self.store = reconcile_store.ReconcileStore(
            self.ledger, resource_definitions.load(), self.settings)
        self.intake = intake_mod.Intake(self.ledger, self.store)
        self.accept(sample('volume.size', 'v9', hours(5), 10))
        self.assertEqual([], self.types())
        self.assertEqual(0, self.store.review(time.time()))
        self.assertEqual(1, self.store.review(time.time() + 301))
        self.assertEqual(['resource.started'], self.types())
        self.assertEqual(0, self.store.review(time.time() + 302))

    def cycle(self, cycle_id, started, resources, listed=None, at=None):
        records = [sample('scs.inventory.volume', rid, started, 10,
                          {observations.CYCLE_KEY: cycle_id,
                           'volume_type': 'ssd'}) for rid in resources]
        marker = sample(observations.CYCLE_METER, cycle_id, at or started,
                        len(resources) if listed is None else listed,
                        {'resource_type': 'volume',
                         'listed': len(resources) if listed is None
                         else listed,
                         'started_at': started.isoformat()},
                        unit='resource')
        return records, marker

    def test_missed_delete_ends_after_two_complete_cycles(self):
        self.accept(volume_event('volume.create.end', 'v1', hours(1)),
                    volume_event('volume.create.end', 'v2', hours(1)))
        records, marker = self.cycle('c1', hours(2), ['v1', 'v2'])
        self.accept(marker, *records)  # marker first: complete on the last
        for n, cycle in enumerate(('c2', 'c3')):
            records, marker = self.cycle(cycle, hours(3 + n), ['v1'])
            self.accept(*records)
            self.accept(marker)
        self.assertEqual(['resource.started', 'resource.started',
                          'resource.ended'], self.types())
        ended = self.billing()[-1]
        self.assertEqual(('v2', 'reconciliation', '2026-12-01T10:00:00Z'),
                         (ended['resource_id'], ended['origin'],
                          ended['ended_at']))

    def test_incomplete_cycle_is_no_evidence(self):
        self.accept(volume_event('volume.create.end', 'v1', hours(1)),
                    volume_event('volume.create.end', 'v2', hours(1)))
        for n, cycle in enumerate(('c1', 'c2', 'c3')):
            # The marker counts 2, one sample got lost: never complete.
            records, marker = self.cycle(cycle, hours(2 + n), ['v1'],
                                         listed=2)
            self.accept(marker, *records)
        # Stock pollsters' absence is no evidence either.
        self.accept(sample('volume.size', 'v1', hours(6), 10))
        self.assertEqual(['resource.started'] * 2, self.types())
        with self.ledger.read() as conn:
            applied = conn.execute(sa.select(
                ledger_mod.inventory_cycles.c.applied_at)).scalars().all()
        self.assertEqual([None] * 3, applied)

    def test_duplicate_inventory_sample_counts_once(self):
        self.accept(volume_event('volume.create.end', 'v1', hours(1)),
                    volume_event('volume.create.end', 'v2', hours(1)))
        records, marker = self.cycle('c1', hours(2), ['v1'], listed=2)
        self.accept(*records)
        self.accept(*records)  # redelivered: the same sample
        self.accept(marker)
        with self.ledger.read() as conn:
            seen, applied = conn.execute(sa.select(
                ledger_mod.inventory_cycles.c.seen,
                ledger_mod.inventory_cycles.c.applied_at)).one()
        self.assertEqual((1, None), (seen, applied))

    # -- usage ------------------------------------------------------------

    def usage(self, hour, volume, project='p1'):
        return sample('storage.objects.size', project, in_future(hour),
                      volume, project=project, unit='B')

    def test_usage_window_finalized_when_time_moves_past_its_grace(self):
        self.accept(self.usage(1, 100), self.usage(1.5, 300))
        self.assertEqual([], self.types())
        # A sample after the window's end and grace period closes it.
        self.accept(self.usage(2.2, 300))
        self.assertEqual(['usage'], self.types())
        event = self.billing()[0]
        self.assertEqual(200.0, event['quantity'])  # 100 half, 300 half
        self.assertEqual((billing.isotime(epoch(in_future(1))),
                          billing.isotime(epoch(in_future(2))),
                          2, 'B', 'storage.objects.size', 'p1'),
                         (event['window_start'], event['window_end'],
                          event['sample_count'], event['unit'],
                          event['meter'], event['project_id']))

    def test_late_usage_sample_corrects_the_window(self):
        self.accept(self.usage(1, 100), self.usage(2.5, 300))
        first = self.billing()[0]
        self.accept(self.usage(1.5, 300))
        self.assertEqual(['usage', 'correction'], self.types())
        correction = self.billing()[1]
        self.assertEqual((first['id'], 'late_sample', 'usage', 200.0),
                         (correction['supersedes'], correction['reason'],
                          correction['corrects'], correction['quantity']))

    def test_review_finalizes_windows_by_the_clock(self):
        self.accept(self.usage(1, 100))
        self.assertEqual(0, self.store.review(epoch(in_future(2)) + 599))
        self.assertEqual(1, self.store.review(epoch(in_future(2)) + 600))
        self.assertEqual(['usage'], self.types())

    def test_prune_forgets_old_ended_resources(self):
        self.accept(volume_event('volume.create.end', 'v1', hours(1)),
                    volume_event('volume.delete.end', 'v1', hours(2)),
                    volume_event('volume.create.end', 'v2', hours(1)))
        removed = self.store.prune(epoch(hours(2)) + 10, 5)
        self.assertEqual(1, removed)
        with self.ledger.read() as conn:
            left = conn.execute(sa.select(
                ledger_mod.resource_state.c.resource_id)).scalars().all()
        self.assertEqual(['v2'], left)


class MySQLStoreTest(StoreTest):
    backend = 'mysql'


class PostgreSQLStoreTest(StoreTest):
    backend = 'postgresql'
