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
"""Billing events on the wire: both formats, and rebuilding from them."""

import json

from scs_publisher import billing
from scs_publisher import billing_stream
from scs_publisher.formats import ceilometer
from scs_publisher.formats import cloudevents
from scs_publisher import sink_queue
from scs_publisher.sinks import loader
from scs_publisher.tests import base

STARTED = billing.parse_time('2026-11-30T08:00:00Z')
ENDED = billing.parse_time('2026-12-03T10:15:02Z')


def ended_event(**overrides):
    fields = dict(
        id=billing.event_id('RegionOne', 'volume', 'v1', 'ended',
                            billing.isotime(ENDED)),
        type=billing.ENDED, resource_id='v1', resource_type='volume',
        project_id='p1', user_id='u1', effective_at=ENDED,
        recorded_at=ENDED + 638, origin='reconciliation', sequence=3,
        attributes={'size': 10, 'volume_type': 'ssd'},
        evidence=['cycle-1'], started_at=STARTED, ended_at=ENDED)
    fields.update(overrides)
    return billing.BillingEvent(**fields)


def outbox_item(event, project='p1'):
    return sink_queue.OutboxItem(1, billing.KIND, event.id,
                                 event.event_type, project, 0.0,
                                 event.to_json())


class FormatTest(base.TestCase):

    def test_ceilometer_format_is_an_event_with_typed_traits(self):
        event = ended_event()
        rendered = json.loads(ceilometer.CeilometerFormat('RegionOne')
                              .render(outbox_item(event)))
        self.assertEqual(event.id, rendered['message_id'])
        self.assertEqual('scs.billing.resource.ended',
                         rendered['event_type'])
        self.assertEqual('2026-12-03T10:15:02', rendered['generated'])
        self.assertEqual({}, rendered['raw'])
        traits = {name: (dtype, value)
                  for name, dtype, value in rendered['traits']}
        self.assertEqual((1, 'v1'), traits['resource_id'])
        self.assertEqual((4, '2026-12-03T10:15:02'), traits['ended_at'])
        self.assertEqual((4, '2026-11-30T08:00:00'), traits['started_at'])
        self.assertEqual((2, 3), traits['sequence'])
        self.assertEqual((2, 10), traits['size'])
        self.assertEqual((1, 'ssd'), traits['volume_type'])
        self.assertEqual((1, 'reconciliation'), traits['origin'])
        # Fixed fields first, as in DESIGN's example.
        self.assertEqual(['resource_id', 'resource_type', 'project_id',
                          'user_id', 'effective_at'],
                         [t[0] for t in rendered['traits'][:5]])

    def test_usage_and_correction_fields(self):
        event = ended_event(type=billing.CORRECTION, supersedes='x',
                            corrects=billing.USAGE, reason='late_sample',
                            meter='storage.objects.size', unit='B',
                            quantity=1.5, window_start=STARTED,
                            window_end=STARTED + 3600, sample_count=4,
                            retracted=True, attributes={'ratio': 0.5})
        rendered = json.loads(ceilometer.CeilometerFormat('R').render(
            outbox_item(event)))
        traits = {name: (dtype, value)
                  for name, dtype, value in rendered['traits']}
        self.assertEqual((3, 1.5), traits['quantity'])
        self.assertEqual((2, 4), traits['sample_count'])
        self.assertEqual((4, '2026-11-30T09:00:00'), traits['window_end'])
        self.assertEqual((1, 'x'), traits['supersedes'])
        self.assertEqual((1, 'true'), traits['retracted'])
        self.assertEqual((3, 0.5), traits['ratio'])

    def test_cloudevents_format(self):
        event = ended_event()
        rendered = json.loads(cloudevents.CloudEventsFormat('RegionOne')
                              .render(outbox_item(event)))
        self.assertEqual(
            {'specversion': '1.0', 'id': event.id,
             'source': '/scs/RegionOne',
             'type': 'scs.billing.resource.ended', 'subject': 'volume/v1',
             'time': '2026-12-03T10:15:02Z',
             'datacontenttype': 'application/json'},
            {k: v for k, v in rendered.items() if k != 'data'})
        data = rendered['data']
        self.assertEqual('2026-11-30T08:00:00Z', data['started_at'])
        self.assertEqual({'size': 10, 'volume_type': 'ssd'},
                         data['attributes'])
        self.assertNotIn('id', data)

    def test_both_formats_rebuild_the_same_canonical_event(self):
        event = ended_event()
        canonical = event.as_dict()
        item = outbox_item(event)
        from_ceilometer = billing_stream.from_ceilometer(json.loads(
            ceilometer.CeilometerFormat('R').render(item)))
        from_cloudevent = billing_stream.from_cloudevent(json.loads(
            cloudevents.CloudEventsFormat('R').render(item)))
        self.assertEqual(canonical, from_cloudevent)
        for name in ('started_at', 'ended_at', 'effective_at',
                     'recorded_at'):
            self.assertEqual(billing.parse_time(canonical[name]),
                             billing.parse_time(from_ceilometer[name]))
        self.assertEqual(canonical['attributes'],
                         from_ceilometer['attributes'])
        self.assertEqual(canonical['evidence'], from_ceilometer['evidence'])

    def test_sink_filters_by_billing_event_type_and_project(self):
        sink = loader.ConfiguredSink(
            name='s', driver=None, format=None, content='billing',
            batch_size=1, retry_schedule=[1], max_retry_age=1,
            event_types=['scs.billing.resource.*'],
            projects=frozenset(['p1']))
        self.assertTrue(sink.wants(outbox_item(ended_event())))
        self.assertFalse(sink.wants(outbox_item(ended_event(),
                                                project='p2')))
        usage = ended_event(type=billing.USAGE)
        self.assertFalse(sink.wants(outbox_item(usage)))


class StreamTest(base.TestCase):

    def test_rebuild_applies_corrections_and_retractions(self):
        stream = billing_stream.BillingStream()
        started = ended_event(type=billing.STARTED, effective_at=STARTED,
                              id='s1', ended_at=None)
        ended = ended_event(id='e1')
        self.assertTrue(stream.add(started.as_dict()))
        self.assertFalse(stream.add(started.as_dict()))
        stream.add(ended.as_dict())
        # The end was inferred; a late delete moves it an hour earlier.
        stream.add(ended_event(
            id='c1', type=billing.CORRECTION, supersedes='e1',
            corrects=billing.ENDED, effective_at=ENDED - 3600,
            ended_at=ENDED - 3600).as_dict())
        [interval] = stream.intervals()[('volume', 'v1')]
        self.assertEqual((STARTED, ENDED - 3600),
                         (interval.start, interval.end))
        # Then it turns out it never ended.
        stream.add(ended_event(id='c2', type=billing.CORRECTION,
                               supersedes='c1', corrects=billing.ENDED,
                               retracted=True).as_dict())
        [interval] = stream.intervals()[('volume', 'v1')]
        self.assertIsNone(interval.end)
        summary = stream.summary(STARTED, STARTED + 7200)
        self.assertEqual(2.0, summary['p1']['resource_hours']['volume'])
