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

import datetime
import json
import unittest

from ceilometer.event import models
from ceilometer import sample as sample_mod

from scs_publisher import normalize


def make_sample(**overrides):
    fields = dict(name='volume.size', type='gauge', unit='GiB', volume=10,
                  user_id='u1', project_id='p1', resource_id='vol-1',
                  timestamp='2026-12-03T10:00:00+00:00',
                  resource_metadata={'display_name': 'data',
                                     'volume_type': 'ssd'})
    fields.update(overrides)
    return sample_mod.Sample(**fields)


def make_event(message_id='m-1', traits=None):
    return models.Event(
        message_id, 'volume.create.end',
        datetime.datetime(2026, 12, 3, 10, 15, 2),
        traits if traits is not None else [
            models.Trait('resource_id', 1, 'vol-1'),
            models.Trait('project_id', 1, 'p1'),
            models.Trait('size', 2, 10),
            models.Trait('created_at', 4,
                         datetime.datetime(2026, 12, 3, 10, 0))],
        {})


class SampleRecordTest(unittest.TestCase):

    def test_payload_is_what_the_http_publisher_encodes(self):
        sample = make_sample()
        record = normalize.sample_record(sample)
        self.assertEqual(json.dumps(sample.as_dict()), record.payload)
        self.assertEqual(('raw', 'sample', sample.id, 'volume.size', 'p1'),
                         (record.content, record.kind, record.item_id,
                          record.event_type, record.project_id))

    def test_redelivery_with_a_new_id_has_the_same_key(self):
        first = make_sample()
        again = make_sample()  # Ceilometer gives it a fresh uuid1
        self.assertNotEqual(first.id, again.id)
        self.assertEqual(normalize.sample_record(first).dedup_key,
                         normalize.sample_record(again).dedup_key)

    def test_another_fact_has_another_key(self):
        keys = {normalize.sample_record(s).dedup_key for s in (
            make_sample(), make_sample(volume=20),
            make_sample(timestamp='2026-12-03T11:00:00+00:00'),
            make_sample(resource_id='vol-2'),
            make_sample(resource_metadata={'volume_type': 'hdd'}))}
        self.assertEqual(5, len(keys))

    def test_unserializable_metadata_is_malformed(self):
        sample = make_sample(resource_metadata={'when': object()})
        self.assertRaisesRegex(normalize.MalformedItem, 'vol-1',
                               normalize.sample_record, sample)


class EventRecordTest(unittest.TestCase):

    def test_payload_is_event_serialize(self):
        event = make_event()
        record = normalize.event_record(event)
        self.assertEqual(json.dumps(event.serialize()), record.payload)
        self.assertEqual(['resource_id', 1, 'vol-1'],
                         json.loads(record.payload)['traits'][0])
        self.assertEqual('p1', record.project_id)
        self.assertEqual('m-1', record.item_id)

    def test_key_follows_message_id(self):
        self.assertEqual(normalize.event_record(make_event('a')).dedup_key,
                         normalize.event_record(make_event('a')).dedup_key)
        self.assertNotEqual(
            normalize.event_record(make_event('a')).dedup_key,
            normalize.event_record(make_event('b')).dedup_key)

    def test_tenant_id_trait_gives_the_project(self):
        event = make_event(traits=[models.Trait('tenant_id', 1, 't9')])
        self.assertEqual('t9', normalize.event_record(event).project_id)

    def test_event_without_message_id_is_malformed(self):
        self.assertRaises(normalize.MalformedItem, normalize.event_record,
                          make_event(message_id=None))

    def test_records_survive_the_journal_encoding(self):
        record = normalize.event_record(make_event())
        self.assertEqual(record, normalize.record_from_json(
            normalize.record_to_json(record)))
