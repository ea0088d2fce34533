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
"""The inventory pollsters against a simulated OpenStack on loopback
(``fake_openstack``, which stands in for Keystone, Nova, Cinder, Glance
and Neutron), through Ceilometer's real keystoneauth session and endpoint
discovery."""

import collections
import math

from ceilometer import keystone_client
from ceilometer.polling.discovery import endpoint
from ceilometer import service

from scs_publisher import observations
from scs_publisher.pollsters import inventory
from scs_publisher import scenario as scenario_mod
from scs_publisher.tests import base
from scs_publisher.tests import fake_openstack

POLLSTERS = {
    'instance': inventory.InstancePollster,
    'volume': inventory.VolumePollster,
    'volume_snapshot': inventory.SnapshotPollster,
    'volume_backup': inventory.BackupPollster,
    'image': inventory.ImagePollster,
    'floating_ip': inventory.FloatingIPPollster,
}
PAGE_SIZE = 3


def polling_conf(test, cloud, extra=''):
    """A Ceilometer configuration whose service credentials point at
    ``cloud``."""
    path = test.write_conf(
        '[DEFAULT]\nlog_file = %s\n'
        '[service_credentials]\nauth_type = password\nauth_url = %s\n'
        'username = ceilometer\npassword = secret\nproject_name = service\n'
        'user_domain_name = Default\nproject_domain_name = Default\n'
        'interface = internal\nregion_name = RegionOne\n'
        '[scs_inventory]\npage_size = %d\n%s'
        % (base.LOG_FILE, cloud.auth_url, PAGE_SIZE, extra),
        'polling.conf')
    conf = service.prepare_service([], [path])
    inventory.register_opts(conf)
    return conf


class Manager:
    """What a pollster and a discovery use of Ceilometer's polling
    manager: its keystone client."""

    def __init__(self, conf):
        self.keystone = keystone_client.get_client(conf)


class InventoryPollsterTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.cloud = fake_openstack.FakeCloud().start()
        self.addCleanup(self.cloud.stop)
        self.scenario = scenario_mod.Scenario(seed=5, resources=120,
                                              days=1).build()
        self.at = self.scenario.begin + 12 * 3600
        self.cloud.load(self.scenario, self.at)
        self.conf = polling_conf(self, self.cloud)
        self.manager = Manager(self.conf)

    def poll(self, rtype):
        pollster = POLLSTERS[rtype](self.conf)
        discovery = endpoint.EndpointDiscovery(self.conf)
        service_type = pollster.default_discovery.split(':', 1)[1]
        endpoints = discovery.discover(self.manager, service_type)
        self.assertEqual(1, len(endpoints), pollster.default_discovery)
        return pollster.get_samples(self.manager, {}, endpoints)

    def existing(self, rtype):
        return {t.resource_id: t for t in self.scenario.truth.values()
                if t.resource_type == rtype and t.start <= self.at and
                (t.end is None or t.end > self.at)}

    def test_every_type_is_listed_completely_across_pages(self):
        for rtype in POLLSTERS:
            samples = list(self.poll(rtype))
            truth = self.existing(rtype)
            marker = samples[-1]
            listed = samples[:-1]
            self.assertEqual(observations.CYCLE_METER, marker.name)
            self.assertEqual(len(truth), marker.volume, rtype)
            self.assertEqual(
                {'resource_type': rtype, 'listed': len(truth)},
                {k: marker.resource_metadata[k]
                 for k in ('resource_type', 'listed')})
            self.assertEqual(set(truth), {s.resource_id for s in listed})
            self.assertEqual({'scs.inventory.%s' % rtype},
                             {s.name for s in listed})
            cycles = {s.resource_metadata[observations.CYCLE_KEY]
                      for s in listed}
            self.assertEqual({marker.resource_id}, cycles)
            for s in listed:
                t = truth[s.resource_id]
                self.assertEqual(t.project_id, s.project_id, rtype)
                attrs = self.scenario._attributes_at(t, self.at)
                self.assertEqual(attrs, {k: s.resource_metadata[k]
                                         for k in attrs}, rtype)
                self.assertTrue(s.resource_metadata['created_at'])
        self.assertGreater(len(self.existing('instance')), PAGE_SIZE)

    def test_pages_requested_follow_the_paging_to_the_end(self):
        list(self.poll('volume'))
        pages = [q for m, p, q in self.cloud.requests
                 if p.endswith('/volumes/detail')]
        count = len(self.existing('volume'))
        self.assertEqual(math.ceil(count / PAGE_SIZE) or 1, len(pages))
        self.assertEqual(['True'], pages[0]['all_tenants'])
        self.assertEqual([str(PAGE_SIZE)], pages[0]['limit'])
        list(self.poll('image'))
        images = [q for m, p, q in self.cloud.requests
                  if p.endswith('/v2/images')]
        self.assertEqual({('all',)}, {tuple(q['visibility'])
                                      for q in images})

    def test_instances_in_every_state_are_listed(self):
        ids = sorted(self.existing('instance'))
        self.cloud.load(self.scenario, self.at, states={
            ids[0]: 'stopped', ids[1]: 'shelved_offloaded'})
        samples = {s.resource_id: s for s in self.poll('instance')}
        self.assertEqual('stopped', samples[ids[0]].resource_metadata[
            'state'])
        self.assertEqual('SHELVED_OFFLOADED',
                         samples[ids[1]].resource_metadata['status'])

    def test_a_failed_page_sends_no_marker(self):
        self.cloud.fail_page('servers', 2)
        samples = self.poll('instance')
        got = []
        with self.assertRaisesRegex(inventory.ListingFailed,
                                    'instance: page 2 of .* failed'):
            for s in samples:
                got.append(s)
        self.assertEqual(PAGE_SIZE, len(got))
        self.assertNotIn(observations.CYCLE_METER, {s.name for s in got})

    def test_a_page_that_times_out_sends_no_marker(self):
        self.conf.set_override('request_timeout', 1, 'scs_inventory')
        self.cloud.delay_page('volumes', 2, 3)
        with self.assertRaises(inventory.ListingFailed):
            list(self.poll('volume'))

    def test_the_token_serves_every_cycle(self):
        pollster = inventory.ImagePollster(self.conf)
        endpoints = endpoint.EndpointDiscovery(self.conf).discover(
            self.manager, 'image')
        before = self.cloud.tokens
        for _cycle in range(3):
            list(pollster.get_samples(self.manager, {}, endpoints))
        self.assertEqual(1, self.cloud.tokens - before)
        pages = collections.Counter(p for _m, p, _q in self.cloud.requests)
        self.assertEqual(
            3 * math.ceil(len(self.existing('image')) / PAGE_SIZE),
            pages['/image/v2/images'])
