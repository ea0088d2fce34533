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

import os

import yaml

from scs_publisher import resource_definitions as rd
from scs_publisher.tests import base


class PackagedDefinitionsTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.defs = rd.load()

    def test_ships_every_billable_type(self):
        self.assertEqual({'instance', 'volume', 'volume_snapshot',
                          'volume_backup', 'image', 'floating_ip',
                          'object_storage'}, set(self.defs.types))

    def test_events_map_to_lifecycle_steps(self):
        for event_type, expected in (
                ('compute.instance.create.end', ('instance', 'create')),
                ('compute.instance.finish_resize.end', ('instance',
                                                        'update')),
                ('compute.instance.delete.end', ('instance', 'delete')),
                ('volume.resize.end', ('volume', 'update')),
                ('snapshot.delete.end', ('volume_snapshot', 'delete')),
                ('image.upload', ('image', 'create')),
                ('floatingip.create.end', ('floating_ip', 'create'))):
            rtype, step = self.defs.for_event(event_type)
            self.assertEqual(expected, (rtype.name, step), event_type)
        # The start of a delete is not the end of the resource.
        self.assertEqual((None, None),
                         self.defs.for_event('compute.instance.delete.start'))

    def test_meters(self):
        self.assertEqual('volume_snapshot',
                         self.defs.for_meter('snapshot.size').name)
        self.assertEqual({'size': 'volume',
                          'volume_type': 'metadata.volume_type'},
                         self.defs.for_meter('volume.size')
                         .meters['volume.size'].attributes)
        storage = self.defs.for_meter('storage.objects.size')
        self.assertEqual(3600, storage.usage_meters['storage.objects.size'])
        self.assertIsNone(self.defs.for_meter('cpu'))


class ValidationTest(base.TestCase):

    def load(self, data):
        path = os.path.join(self.tmp, 'defs.yaml')
        with open(path, 'w') as f:
            f.write(data if isinstance(data, str) else yaml.safe_dump(data))
        return path, lambda: rd.load(path)

    def assertInvalid(self, data, *fragments):
        path, load = self.load(data)
        error = self.assertRaises(rd.DefinitionError, load)
        self.assertIn(path, str(error))
        for fragment in fragments:
            self.assertIn(fragment, str(error))

    def resources(self, **spec):
        return {'resources': {'volume': spec}}

    def test_missing_file(self):
        self.assertRaisesRegex(rd.DefinitionError, 'cannot read',
                               rd.load, os.path.join(self.tmp, 'nope.yaml'))

    def test_not_yaml(self):
        self.assertInvalid('resources: [unclosed', 'not valid YAML')

    def test_no_resources(self):
        self.assertInvalid({'version': 1}, '"resources"')

    def test_unknown_key(self):
        self.assertInvalid(self.resources(event={}), 'resource type '
                           '"volume"', 'event', 'unknown key')

    def test_unknown_lifecycle_step(self):
        self.assertInvalid(self.resources(events={'resize': ['x']}),
                           '"volume"', 'events')

    def test_event_list(self):
        self.assertInvalid(self.resources(events={'create': 'x'}),
                           'events.create', 'list of event types')

    def test_meter_attribute_source(self):
        self.assertInvalid(self.resources(meters={'volume.size': {
            'size': 'payload.size'}}), 'meters.volume.size.size',
            '"metadata.<key>"')

    def test_usage_window(self):
        self.assertInvalid(self.resources(usage_meters={'m': {
            'window': 0}}), 'usage_meters.m.window')

    def test_reserved_attribute_name(self):
        self.assertInvalid(self.resources(
            events={'create': ['volume.create.end']},
            attributes={'project_id': 'tenant'}), 'attributes',
            '"project_id" is a field of every billing event')

    def test_event_claimed_by_two_types(self):
        self.assertInvalid({'resources': {
            'a': {'events': {'create': ['x.create.end']}},
            'b': {'events': {'delete': ['x.create.end']}}}},
            'resource type "b"', '"x.create.end" is also an event of "a"')

    def test_empty_definition(self):
        self.assertInvalid(self.resources(attributes={}),
                           'needs events, meters or usage_meters')

    def test_operator_file_is_used(self):
        path, load = self.load(self.resources(
            events={'create': ['volume.create.end']},
            attributes={'gigabytes': 'size'}))
        self.assertEqual({'gigabytes': 'size'},
                         load().types['volume'].attributes)
