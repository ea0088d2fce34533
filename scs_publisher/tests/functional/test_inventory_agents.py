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
"""End to end: the real ``ceilometer-polling`` (central namespace) runs the
inventory pollsters against a simulated OpenStack on loopback
(``fake_openstack``, standing in for Keystone, Nova, Cinder, Glance and
Neutron) and sends over the real RabbitMQ to the real
``ceilometer-agent-notification`` with ``scs://`` and a billing sink.

No notification from the services reaches the agent at all: every create
and delete is "dropped", so everything billed is found by reconciliation.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import sqlalchemy as sa
import yaml

from scs_publisher import billing
from scs_publisher import billing_stream
from scs_publisher import inprocess
from scs_publisher import ledger as ledger_mod
from scs_publisher import receiver as receiver_mod
from scs_publisher import scenario as scenario_mod
from scs_publisher.tests import base
from scs_publisher.tests import fake_openstack

BIN = os.path.dirname(sys.executable)
TYPES = ('instance', 'volume', 'volume_snapshot', 'volume_backup', 'image',
         'floating_ip')
INTERVAL = 2  # seconds between polling cycles


class InventoryAgentsTest(base.TestCase):

    def setUp(self):
        super().setUp()
        base.require_port(self, 5672, 'RabbitMQ')
        self.cloud = fake_openstack.FakeCloud().start()
        self.addCleanup(self.cloud.stop)
        self.scenario = scenario_mod.Scenario(seed=21, resources=60,
                                              days=1).build()
        self.at = self.scenario.begin + 12 * 3600
        self.cloud.load(self.scenario, self.at)
        self.rcv = receiver_mod.Receiver().start()
        self.addCleanup(self.rcv.stop)
        topic = 'scs_inventory_%s' % uuid.uuid4().hex[:10]
        pipeline, event_pipeline = inprocess.write_pipelines(
            self.tmp, ['scs://'])
        polling = os.path.join(self.tmp, 'polling.yaml')
        with open(polling, 'w') as f:
            yaml.safe_dump({'sources': [{
                'name': 'inventory', 'interval': INTERVAL,
                'meters': ['scs.inventory.%s' % t for t in TYPES]}]}, f)
        common = (
            '[DEFAULT]\ntransport_url = %(rabbit)s\n'
            '[oslo_messaging_notifications]\ntopics = %(topic)s\n'
            % {'rabbit': base.RABBIT_URL, 'topic': topic})
        self.notification_conf = self.write_conf(
            common +
            '[DEFAULT]\npipeline_cfg_file = %s\nevent_pipeline_cfg_file = %s\n'
            'log_file = %s/notification.log\n'
            '[notification]\nworkers = 1\nbatch_size = 50\n'
            'batch_timeout = 1\n'
            '[scs_publisher]\nstate_path = %s\nreconcile_settle = 0\n'
            'sinks = billing\n[sink:billing]\nurl = %s\n'
            % (pipeline, event_pipeline, self.tmp, self.tmp, self.rcv.url),
            'notification.conf')
        self.polling_conf = self.write_conf(
            common +
            '[DEFAULT]\nlog_file = %s/polling.log\n'
            '[polling]\ncfg_file = %s\n'
            '[service_credentials]\nauth_type = password\nauth_url = %s\n'
            'username = ceilometer\npassword = secret\n'
            'project_name = service\nuser_domain_name = Default\n'
            'project_domain_name = Default\ninterface = internal\n'
            'region_name = RegionOne\n'
            '[scs_inventory]\npage_size = 10\n'
            % (self.tmp, polling, self.cloud.auth_url), 'polling.conf')
        self.agents = []
        self.addCleanup(self.stop_agents)

    def start(self, command, conf, *extra):
        log = open(os.path.join(self.tmp, command + '.out'), 'ab')
        agent = subprocess.Popen(
            [os.path.join(BIN, command), '--config-file', conf] +
            list(extra), stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.agents.append(agent)

    def stop_agents(self):
        for agent in self.agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()

    def facts(self):
        stream = billing_stream.BillingStream()
        for item in self.rcv.items:
            stream.add(billing_stream.from_ceilometer(item))
        return stream

    def facts_settled(self, resource_id):
        """The resource's end reached the receiver."""
        found = self.intervals().get(resource_id)
        return bool(found) and found[-1].end is not None

    def intervals(self):
        return {rid: found for (_t, rid), found
                in self.facts().intervals().items()}

    def existing(self):
        return {t.resource_id: t for t in self.scenario.truth.values()
                if t.start <= self.at and (t.end is None or t.end > self.at)}

    def listings(self, collection):
        return sum(1 for _m, path, query in self.cloud.requests
                   if path.endswith(collection) and 'marker' not in query)

    def wait_listings(self, collection, count):
        """Wait until ``count`` more listings of ``collection`` began."""
        target = self.listings(collection) + count
        base.wait_until(lambda: self.listings(collection) >= target, 120,
                        interval=0.2,
                        message='%d listings of %s' % (count, collection))

    def complete_cycles(self, resource_type, since):
        """Ids of the complete cycles of a type that began listing after
        ``since``, oldest first (as the notification agent's ledger has
        them)."""
        ledger = ledger_mod.Ledger('sqlite:///' + os.path.join(
            self.tmp, 'ledger.sqlite'))
        cycles = ledger_mod.inventory_cycles
        try:
            with ledger.read() as conn:
                return list(conn.execute(
                    sa.select(cycles.c.cycle_id)
                    .where(cycles.c.resource_type == resource_type)
                    .where(cycles.c.started_at > since)
                    .where(cycles.c.applied_at.is_not(None))
                    .order_by(cycles.c.started_at)).scalars())
        finally:
            ledger.dispose()

    def ended_by(self, resource_id):
        """The evidence of the resource's end: the cycle that ended it."""
        for kind, fields in self.facts().facts():
            if kind == billing.ENDED and fields['resource_id'] == \
                    resource_id:
                return fields['evidence']
        return None

    def wait_complete_cycles(self, resource_type, since, count):
        base.wait_until(
            lambda: len(self.complete_cycles(resource_type, since)) >= count,
            120, interval=0.2, message='%d complete %s cycles'
            % (count, resource_type))

    def test_reconciliation_from_complete_listings_only(self):
        self.start('ceilometer-agent-notification', self.notification_conf)
        self.start('ceilometer-polling', self.polling_conf,
                   '--polling-namespaces', 'central')
        existing = self.existing()
        self.assertEqual(set(TYPES), {t.resource_type
                                      for t in existing.values()})

        # Creates whose notifications were dropped: started, at the
        # creation time the listing carries.
        base.wait_until(lambda: set(self.intervals()) >= set(existing),
                        180, interval=0.5,
                        message='%d resources started' % len(existing))
        intervals = self.intervals()
        for rid, truth in existing.items():
            self.assertEqual(truth.start, intervals[rid][0].start, rid)
            self.assertIsNone(intervals[rid][-1].end, rid)
        starts = [e for e in self.facts().events.values()
                  if e['type'] == billing.TYPE_PREFIX + billing.STARTED]
        self.assertEqual({'reconciliation'}, {e['origin'] for e in starts})

        by_type = {}
        for rid, truth in sorted(existing.items()):
            by_type.setdefault(truth.resource_type, []).append(rid)
        instances = by_type['instance']
        gone_volume = by_type['volume'][0]
        hidden_volume = by_type['volume'][1]
        stopped, shelved = instances[0], instances[1]
        gone_instance = instances[2]

        # A SHUTOFF and a SHELVED instance are listed: they change state,
        # they do not end.
        states = {stopped: 'stopped', shelved: 'shelved_offloaded'}
        # A failing page: no instance listing is complete while it fails,
        # so the instance deleted meanwhile does not end.
        del self.scenario.truth[gone_instance]
        self.cloud.fail_page('servers', 1)
        # A partial listing (one volume left out once) ends nothing.
        self.cloud.hide_once('volumes', hidden_volume)
        # A volume deleted without notification ends within two complete
        # cycles (absence_cycles) that began after it was gone.
        del self.scenario.truth[gone_volume]
        changed_at = time.time()
        self.cloud.load(self.scenario, self.at, states)

        self.wait_complete_cycles('volume', changed_at, 2)
        self.wait_listings('servers/detail', 3)
        self.assertEqual([], self.complete_cycles('instance', changed_at))
        base.wait_until(lambda: self.facts_settled(gone_volume), 30,
                        interval=0.2, message='the volume to end')
        intervals = self.intervals()
        self.assertIsNone(intervals[gone_instance][-1].end)
        self.assertIsNone(intervals[hidden_volume][-1].end)
        self.assertIsNotNone(intervals[gone_volume][-1].end)
        # Ended by the second complete cycle that began after it was gone
        # (one that began a moment before may have missed it too).
        self.assertIn(self.ended_by(gone_volume)[0], self.complete_cycles(
            'volume', changed_at - INTERVAL)[:3])

        # The page recovers: the deleted instance ends within two complete
        # cycles; the stopped and shelved ones only change state.
        recovered_at = time.time()
        self.cloud.fail_page('servers', 1, status=None)
        self.wait_complete_cycles('instance', recovered_at, 2)
        base.wait_until(lambda: self.facts_settled(gone_instance), 30,
                        interval=0.2, message='the instance to end')
        intervals = self.intervals()
        for rid, state in states.items():
            self.assertIsNone(intervals[rid][-1].end, rid)
            self.assertEqual(state, intervals[rid][-1].attributes['state'])
        ended = {rid for rid, found in intervals.items()
                 if found[-1].end is not None}
        self.assertEqual({gone_volume, gone_instance}, ended)
        self.assertEqual(0, self.rcv.duplicates)
