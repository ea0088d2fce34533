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
"""The reconciliation rules, one by one, on the pure reconciler."""

import itertools

from scs_publisher import billing
from scs_publisher import billing_stream
from scs_publisher import reconcile
from scs_publisher.tests import base

T0 = 1764000000.0  # event times: T0 + n hours
HOUR = 3600.0
NOW = T0 + 1000 * HOUR  # processing time, well after the events


def at(hours):
    return T0 + hours * HOUR


def note(step, hours, attrs=None, start=None, end=None, evidence=None,
         origin=billing.ORIGIN_NOTIFICATION, rid='vol-1'):
    return reconcile.Observation(
        resource_type='volume', resource_id=rid, step=step, at=at(hours),
        origin=origin, evidence=evidence or '%s-%s' % (step, hours),
        project_id='p1', user_id='u1', attributes=attrs or {},
        started_hint=None if start is None else at(start),
        ended_hint=None if end is None else at(end))


def seen(hours, attrs=None, start=None, rid='vol-1'):
    return note(reconcile.SEEN, hours, attrs, start=start,
                origin=billing.ORIGIN_POLLING, evidence='poll-%s' % hours,
                rid=rid)


def kinds(events):
    return [e.type for e in events]


class ReconcilerTest(base.TestCase):

    settings = reconcile.Settings(source='Test', settle=60)

    def setUp(self):
        super().setUp()
        self.fresh()

    def fresh(self):
        self.reconciler = reconcile.Reconciler(self.settings)
        self.state = reconcile.ResourceState('volume', 'vol-1')
        self.sent = []

    def feed(self, *observations, now=NOW):
        events = []
        for obs in observations:
            events += self.reconciler.observe(self.state, obs, now)
        self.sent += events
        return events

    def intervals(self):
        stream = billing_stream.BillingStream()
        for event in self.sent:
            stream.add(event.as_dict())
        return [(i.start, i.end, i.attributes) for i in
                stream.intervals().get(('volume', 'vol-1'), [])]

    # -- notifications -------------------------------------------------

    def test_create_starts_at_creation_time_with_attributes(self):
        events = self.feed(note('create', 1, {'size': 10}, start=0.5))
        self.assertEqual([billing.STARTED], kinds(events))
        started = events[0]
        self.assertEqual(at(0.5), started.effective_at)
        self.assertEqual({'size': 10}, started.attributes)
        self.assertEqual(billing.ORIGIN_NOTIFICATION, started.origin)
        self.assertEqual(['create-1'], started.evidence)
        self.assertEqual(1, started.sequence)
        self.assertEqual(('p1', 'u1'), (started.project_id, started.user_id))

    def test_create_without_creation_time_starts_at_event_time(self):
        events = self.feed(note('create', 1, {'size': 10}))
        self.assertEqual(at(1), events[0].effective_at)

    def test_same_create_three_times_starts_once(self):
        events = self.feed(
            note('create', 1, {'size': 10}, start=1, evidence='a'),
            note('create', 1, {'size': 10}, start=1, evidence='b'),
            note('create', 1, {'size': 10}, start=1, evidence='c'))
        self.assertEqual([billing.STARTED], kinds(events))

    def test_lifecycle_in_order(self):
        self.feed(note('create', 1, {'size': 10}),
                  note('update', 5, {'size': 20}),
                  note('delete', 9, {'size': 20}))
        self.assertEqual([billing.STARTED, billing.CHANGED, billing.ENDED],
                         kinds(self.sent))
        self.assertEqual([1, 2, 3], [e.sequence for e in self.sent])
        ended = self.sent[-1]
        self.assertEqual((at(1), at(9)), (ended.started_at, ended.ended_at))
        self.assertEqual([(at(1), at(5), {'size': 10}),
                          (at(5), at(9), {'size': 20})], self.intervals())

    def test_every_arrival_order_gives_the_same_intervals(self):
        observations = [note('create', 1, {'size': 10}, start=1),
                        note('update', 5, {'size': 20}, start=1),
                        note('delete', 9, {'size': 20}, start=1)]
        expected = [(at(1), at(5), {'size': 10}),
                    (at(5), at(9), {'size': 20})]
        for order in itertools.permutations(observations):
            self.fresh()
            self.feed(*order)
            self.assertEqual(expected, self.intervals(),
                             [o.step for o in order])

    def test_delete_before_create_with_creation_time(self):
        events = self.feed(note('delete', 9, {'size': 10}, start=1))
        self.assertEqual([billing.STARTED, billing.ENDED], kinds(events))
        self.assertEqual(at(1), events[0].effective_at)
        self.assertEqual(at(9), events[1].effective_at)
        # The create, arriving late, tells nothing new.
        self.assertEqual([], self.feed(note('create', 1, {'size': 10},
                                            start=1)))

    def test_delete_of_a_resource_never_seen_without_creation_time(self):
        events = self.feed(note('delete', 9))
        self.assertEqual([billing.ENDED], kinds(events))
        self.assertIsNone(events[0].started_at)
        # When the create comes, the start is emitted; the end stands.
        events = self.feed(note('create', 2, {'size': 10}))
        self.assertEqual([billing.STARTED], kinds(events))
        self.assertEqual([(at(2), at(9), {'size': 10})], self.intervals())

    def test_deleted_at_trait_gives_the_end(self):
        events = self.feed(note('delete', 9, end=8.5, start=1))
        self.assertEqual(at(8.5), events[-1].effective_at)

    def test_two_deletes_end_once_at_the_earlier(self):
        self.feed(note('create', 1))
        events = self.feed(note('delete', 9))
        self.assertEqual([billing.ENDED], kinds(events))
        self.assertEqual([], self.feed(note('delete', 9, evidence='again')))
        # An earlier delete arriving late moves the end: a correction.
        events = self.feed(note('delete', 8))
        self.assertEqual([billing.CORRECTION], kinds(events))
        correction = events[0]
        self.assertEqual(self.sent[1].id, correction.supersedes)
        self.assertEqual(billing.ENDED, correction.corrects)
        self.assertEqual(billing.REASON_OUT_OF_ORDER, correction.reason)
        self.assertEqual(at(8), correction.effective_at)
        self.assertEqual([(at(1), at(8), {})], self.intervals())

    def test_resize_before_create(self):
        events = self.feed(note('update', 5, {'size': 20}, start=1))
        # Known from the resize: it exists since its creation time, with
        # the only size known so far.
        self.assertEqual([billing.STARTED], kinds(events))
        self.assertEqual({'size': 20}, events[0].attributes)
        events = self.feed(note('create', 1, {'size': 10}, start=1))
        self.assertEqual([billing.CORRECTION, billing.CHANGED], kinds(events))
        self.assertEqual(self.sent[0].id, events[0].supersedes)
        self.assertEqual({'size': 10}, events[0].attributes)
        self.assertEqual([(at(1), at(5), {'size': 10}),
                          (at(5), None, {'size': 20})], self.intervals())

    def test_ids_do_not_depend_on_arrival_order_or_process(self):
        observations = [note('create', 1, {'size': 10}), note('delete', 9)]
        first = reconcile.Reconciler(self.settings)
        state = reconcile.ResourceState('volume', 'vol-1')
        ids_in_order = {e.id for o in observations
                        for e in first.observe(state, o, NOW)}
        second = reconcile.Reconciler(self.settings)
        state = reconcile.ResourceState('volume', 'vol-1')
        ids_reversed = {e.id for o in reversed(observations)
                        for e in second.observe(state, o, NOW)}
        # Reversed, the delete comes first (no start known): ended only,
        # then the start with the create; the same facts, so the same ids.
        self.assertEqual(ids_in_order, ids_reversed)
        other_region = reconcile.Reconciler(
            reconcile.Settings(source='Other', settle=60))
        state = reconcile.ResourceState('volume', 'vol-1')
        ids_elsewhere = {e.id for o in observations
                         for e in other_region.observe(state, o, NOW)}
        self.assertFalse(ids_in_order & ids_elsewhere)

    # -- polling -------------------------------------------------------

    def test_unknown_resource_seen_starts_after_settle(self):
        self.assertEqual([], self.feed(seen(3, {'size': 10}, start=1)))
        self.assertEqual(NOW + 60, self.state.review_at)
        events = self.reconciler.settle(self.state, NOW + 60)
        self.assertEqual([billing.STARTED], kinds(events))
        started = events[0]
        self.assertEqual(billing.ORIGIN_RECONCILIATION, started.origin)
        self.assertEqual(at(1), started.effective_at)  # its created_at
        self.assertIsNone(self.state.review_at)

    def test_seen_without_creation_time_starts_when_seen(self):
        self.feed(seen(3, {'size': 10}))
        events = self.reconciler.settle(self.state, NOW + 60)
        self.assertEqual(at(3), events[0].effective_at)

    def test_notification_within_settle_makes_the_inference_moot(self):
        self.feed(seen(3, {'size': 10}))
        events = self.feed(note('create', 1, {'size': 10}), now=NOW + 5)
        self.assertEqual([billing.STARTED], kinds(events))
        self.assertEqual(billing.ORIGIN_NOTIFICATION, events[0].origin)
        self.assertEqual([], self.reconciler.settle(self.state, NOW + 600))

    def test_late_create_corrects_an_inferred_start(self):
        self.feed(seen(3, {'size': 10}))
        inferred = self.reconciler.settle(self.state, NOW + 60)[0]
        events = self.feed(note('create', 1, {'size': 10}), now=NOW + 100)
        self.assertEqual([billing.CORRECTION], kinds(events))
        correction = events[0]
        self.assertEqual(inferred.id, correction.supersedes)
        self.assertEqual(billing.REASON_LATE_NOTIFICATION, correction.reason)
        self.assertEqual(billing.STARTED, correction.corrects)
        self.assertEqual(at(1), correction.effective_at)

    def test_routine_sightings_leave_no_trace_in_the_timeline(self):
        self.feed(note('create', 1, {'size': 10}))
        for hours in range(2, 50):
            self.assertTrue(self.reconciler.is_routine_sighting(
                self.state, seen(hours, {'size': 10})))
            self.assertEqual([], self.feed(seen(hours, {'size': 10})))
        self.assertEqual(1, len(self.state.timeline))
        self.assertEqual(at(49), self.state.last_seen)
        self.assertFalse(self.reconciler.is_routine_sighting(
            self.state, seen(50, {'size': 20})))

    def test_drift_seen_by_polling_changes_after_settle(self):
        self.feed(note('create', 1, {'size': 10, 'volume_type': 'ssd'}))
        self.assertEqual([], self.feed(seen(4, {'size': 20})))
        events = self.reconciler.settle(self.state, NOW + 60)
        self.assertEqual([billing.CHANGED], kinds(events))
        self.assertEqual(billing.ORIGIN_POLLING, events[0].origin)
        self.assertEqual({'size': 20, 'volume_type': 'ssd'},
                         events[0].attributes)

    def test_meter_telling_a_new_attribute_is_no_change(self):
        self.feed(note('create', 1, {'size': 10}))
        self.feed(seen(4, {'size': 10, 'volume_type': 'ssd'}))
        self.assertEqual([], self.reconciler.settle(self.state, NOW + 60))

    def test_late_resize_corrects_the_drift(self):
        self.feed(note('create', 1, {'size': 10}), seen(4, {'size': 20}))
        drift = self.reconciler.settle(self.state, NOW + 60)[0]
        events = self.feed(note('update', 3, {'size': 20}), now=NOW + 100)
        self.assertEqual([billing.CORRECTION], kinds(events))
        self.assertEqual(drift.id, events[0].supersedes)
        self.assertEqual(billing.REASON_LATE_NOTIFICATION, events[0].reason)
        self.assertEqual(at(3), events[0].effective_at)
        self.assertEqual([(at(1), at(3), {'size': 10}),
                          (at(3), None, {'size': 20})], self.intervals())

    # -- absence from complete inventory cycles -------------------------

    def absent(self, cycle_hours, now=NOW):
        events = self.reconciler.absent(self.state, 'cycle-%s' % cycle_hours,
                                        at(cycle_hours), now)
        self.sent += events
        return events

    def test_missing_from_k_complete_cycles_ends_at_last_seen(self):
        self.feed(note('create', 1, {'size': 10}), seen(2, {'size': 10}))
        self.assertEqual([], self.absent(3))
        self.assertEqual(1, self.state.misses)
        self.assertEqual([], self.absent(4))  # K reached, settling
        events = self.reconciler.settle(self.state, NOW + 60)
        self.sent += events
        self.assertEqual([billing.ENDED], kinds(events))
        self.assertEqual(billing.ORIGIN_RECONCILIATION, events[0].origin)
        self.assertEqual(at(2), events[0].effective_at)
        self.assertEqual([(at(1), at(2), {'size': 10})], self.intervals())

    def test_absence_end_at_first_missed_cycle(self):
        self.reconciler = reconcile.Reconciler(reconcile.Settings(
            source='Test', settle=0,
            absence_end=reconcile.ABSENCE_END_FIRST_MISSED))
        self.feed(note('create', 1), seen(2))
        self.absent(3)
        events = self.absent(4)
        self.assertEqual(at(3), events[0].effective_at)

    def test_a_sighting_between_misses_starts_counting_again(self):
        self.feed(note('create', 1), seen(2))
        self.absent(3)
        self.feed(seen(3.5))
        self.assertEqual(0, self.state.misses)
        self.assertEqual([], self.absent(4))
        self.assertEqual(1, self.state.misses)

    def test_a_late_sample_from_before_a_miss_does_not_reset_it(self):
        self.feed(note('create', 1), seen(2))
        self.absent(3)
        self.feed(seen(2.5))
        self.assertEqual(1, self.state.misses)

    def test_reappearing_resource_retracts_the_inferred_end(self):
        self.feed(note('create', 1), seen(2))
        self.absent(3)
        self.absent(4)
        ended = self.reconciler.settle(self.state, NOW + 60)
        self.sent += ended
        events = self.feed(seen(5), now=NOW + 100)
        self.assertEqual([billing.CORRECTION], kinds(events))
        self.assertTrue(events[0].retracted)
        self.assertEqual(ended[0].id, events[0].supersedes)
        self.assertEqual(billing.REASON_REAPPEARED, events[0].reason)
        self.assertEqual([(at(1), None, {})], self.intervals())

    def test_late_delete_corrects_the_inferred_end(self):
        self.feed(note('create', 1), seen(2))
        self.absent(3)
        self.absent(4)
        inferred = self.reconciler.settle(self.state, NOW + 60)[0]
        self.sent.append(inferred)
        events = self.feed(note('delete', 2.5), now=NOW + 100)
        self.assertEqual([billing.CORRECTION], kinds(events))
        self.assertEqual(inferred.id, events[0].supersedes)
        self.assertEqual(billing.REASON_LATE_NOTIFICATION, events[0].reason)
        self.assertEqual(billing.ORIGIN_NOTIFICATION, events[0].origin)
        self.assertEqual([(at(1), at(2.5), {})], self.intervals())

    def test_delete_notification_ends_nothing_twice_after_absence(self):
        self.feed(note('create', 1), seen(2), note('delete', 2))
        self.absent(3)
        self.absent(4)
        self.assertEqual([], self.reconciler.settle(self.state, NOW + 60))
        self.assertEqual(1, kinds(self.sent).count(billing.ENDED))

    def test_stale_sighting_after_delete_changes_nothing(self):
        self.feed(note('create', 1, {'size': 10}), note('delete', 5))
        self.assertEqual([], self.feed(seen(6, {'size': 30})))
        self.assertEqual([], self.reconciler.settle(self.state, NOW + 60))

    # -- attributes only a meter tells -----------------------------------

    def test_start_waits_for_an_attribute_only_a_sample_tells(self):
        """A snapshot's notification has no size; the snapshot.size sample
        made from the same notification has. The start waits for it (up
        to settle), then carries it."""
        self.reconciler = reconcile.Reconciler(
            self.settings, {'volume': frozenset(['size', 'volume_id'])})
        self.assertEqual([], self.feed(note('create', 1,
                                            {'volume_id': 'v0'})))
        events = self.feed(seen(1, {'size': 5}), now=NOW + 1)
        self.assertEqual([billing.STARTED], kinds(events))
        self.assertEqual({'volume_id': 'v0', 'size': 5},
                         events[0].attributes)
        self.assertEqual(billing.ORIGIN_NOTIFICATION, events[0].origin)

    def test_start_without_the_attribute_goes_after_settle(self):
        self.reconciler = reconcile.Reconciler(
            self.settings, {'volume': frozenset(['size', 'volume_id'])})
        self.feed(note('create', 1, {'volume_id': 'v0'}))
        events = self.reconciler.settle(self.state, NOW + 60)
        self.assertEqual([billing.STARTED], kinds(events))
        self.assertEqual({'volume_id': 'v0'}, events[0].attributes)

    def test_sample_of_a_change_under_way_defers_to_its_notification(self):
        """cinder's volume.resize.start makes a volume.size sample with the
        new size; the resize takes effect at resize.end."""
        self.feed(note('create', 1, {'size': 10}))
        self.feed(seen(5, {'size': 20}))
        events = self.feed(note('update', 5.01, {'size': 20}), now=NOW + 1)
        self.assertEqual([billing.CHANGED], kinds(events))
        self.assertEqual(at(5.01), events[0].effective_at)
        self.assertEqual([], self.reconciler.settle(self.state, NOW + 600))
