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
"""End to end: the real ``ceilometer-agent-notification`` consuming from
the real RabbitMQ on 127.0.0.1:5672, killed with SIGKILL while the sinks
are down, restarted; every event must reach the raw sink once, and every
resource's billing events the billing sink once."""

import os
import signal
import socket
import subprocess
import sys
import uuid

from oslo_config import cfg
import oslo_messaging
import sqlalchemy as sa

from scs_publisher import billing
from scs_publisher import billing_stream
from scs_publisher import inprocess
from scs_publisher import ledger as ledger_mod
from scs_publisher import receiver as receiver_mod
from scs_publisher import simulation
from scs_publisher.tests import base

AGENT = os.path.join(os.path.dirname(sys.executable),
                     'ceilometer-agent-notification')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class AgentTest(base.TestCase):

    def setUp(self):
        super().setUp()
        base.require_port(self, 5672, 'RabbitMQ')
        # A topic of our own, so runs never read each other's queues.
        self.topic = 'scs_test_%s' % uuid.uuid4().hex[:10]
        self.port = free_port()
        self.billing_port = free_port()
        pipeline, event_pipeline = inprocess.write_pipelines(
            self.tmp, ['scs://'])
        self.ledger_url = self.sqlite_url()
        self.conf_path = self.write_conf(
            '[DEFAULT]\n'
            'transport_url = %(rabbit)s\n'
            'pipeline_cfg_file = %(pipeline)s\n'
            'event_pipeline_cfg_file = %(event_pipeline)s\n'
            'log_file = %(tmp)s/agent.log\n'
            '[oslo_messaging_notifications]\n'
            'topics = %(topic)s\n'
            '[notification]\n'
            'ack_on_event_error = False\n'
            'workers = 2\n'
            'batch_size = 20\n'
            'batch_timeout = 1\n'
            '[scs_publisher]\n'
            'state_path = %(tmp)s\n'
            'connection = %(ledger)s\n'
            'reconcile_settle = 1\n'
            'sinks = hook, billing\n'
            '[sink:hook]\n'
            'url = http://127.0.0.1:%(port)d/\n'
            'content = raw\n'
            'retry_schedule = 1\n'
            '[sink:billing]\n'
            'url = http://127.0.0.1:%(billing_port)d/\n'
            'retry_schedule = 1\n'
            % {'rabbit': base.RABBIT_URL, 'pipeline': pipeline,
               'event_pipeline': event_pipeline, 'tmp': self.tmp,
               'topic': self.topic, 'ledger': self.ledger_url,
               'port': self.port, 'billing_port': self.billing_port})
        self.agent = None
        self.addCleanup(self.kill_agent)
        conf = cfg.ConfigOpts()
        conf([], default_config_files=[])
        # Sent on the "nova" exchange, one of those the agent reads.
        oslo_messaging.set_transport_defaults('nova')
        self.transport = oslo_messaging.get_notification_transport(
            conf, url=base.RABBIT_URL)
        self.addCleanup(self.transport.cleanup)

    def start_agent(self):
        log = open(os.path.join(self.tmp, 'agent.out'), 'ab')
        self.agent = subprocess.Popen(
            [AGENT, '--config-file', self.conf_path],
            stdout=log, stderr=log, start_new_session=True)
        log.close()

    def kill_agent(self):
        if self.agent and self.agent.poll() is None:
            os.killpg(self.agent.pid, signal.SIGKILL)
            self.agent.wait()

    def send(self, messages):
        notifier = oslo_messaging.Notifier(
            self.transport, driver='messagingv2', topics=[self.topic],
            publisher_id='test')
        for msg in messages:
            simulation.send(notifier, msg)

    def ledger_events(self):
        ledger = ledger_mod.Ledger(self.ledger_url)
        try:
            with ledger.begin() as conn:
                return conn.execute(
                    sa.select(sa.func.count()).select_from(ledger_mod.outbox)
                    .where(ledger_mod.outbox.c.kind == 'event')).scalar()
        except ledger_mod.LedgerUnavailable:
            return 0
        finally:
            ledger.dispose()

    def test_sigkill_while_the_sink_is_down_loses_nothing(self):
        first = simulation.notifications(30, seed=11)
        second = simulation.notifications(30, seed=12)
        self.start_agent()
        self.send(first)
        # Proof of consumption: the events are in the ledger. The sink is
        # down (nothing listens on its port), so they wait there.
        base.wait_until(lambda: self.ledger_events() >= 30, 120,
                        interval=0.5, message='the agent to take 30 events')
        self.kill_agent()
        self.send(second)  # queued in RabbitMQ while the agent is dead

        rcv = receiver_mod.Receiver(port=self.port).start()
        self.addCleanup(rcv.stop)
        billing_rcv = receiver_mod.Receiver(port=self.billing_port).start()
        self.addCleanup(billing_rcv.stop)
        self.start_agent()
        expected = {(m['event_type'], _resource(m)) for m in first + second}
        self.assertEqual(60, len(expected))

        def arrived():
            return {(i['event_type'], _trait(i, 'resource_id'))
                    for i in rcv.items if 'message_id' in i} >= expected
        base.wait_until(arrived, 120, interval=0.5,
                        message='all 60 events at the sink')
        events = [i for i in rcv.items if 'message_id' in i]
        self.assertEqual(60, len(events))
        self.assertEqual(0, rcv.duplicates)
        samples = [i for i in rcv.items if 'message_id' not in i]
        self.assertTrue(samples, 'meter samples arrive too')
        self.check_billing(billing_rcv, first + second)

    def check_billing(self, rcv, messages):
        """Rebuilt from what the billing sink got: every resource active
        from the creation time its payload carries, every deleted one
        ended, no fact in force twice."""
        created, deleted = {}, set()
        for msg in messages:
            if msg['event_type'] in ('volume.create.end',
                                     'compute.instance.create.end',
                                     'volume.resize.end',
                                     'volume.delete.end',
                                     'compute.instance.delete.end'):
                payload = msg['payload']
                created[_resource(msg)] = billing.parse_time(
                    payload.get('launched_at') or payload['created_at'])
                if msg['event_type'].endswith('delete.end'):
                    deleted.add(_resource(msg))

        def rebuilt():
            stream = billing_stream.BillingStream()
            for item in rcv.items:
                stream.add(billing_stream.from_ceilometer(item))
            return {rid: intervals for (_type, rid), intervals
                    in stream.intervals().items()}

        def complete():
            intervals = rebuilt()
            return set(intervals) >= set(created) and all(
                intervals[rid][-1].end is not None for rid in deleted)
        base.wait_until(complete, 120, interval=0.5,
                        message='billing events of %d resources'
                        % len(created))
        intervals = rebuilt()
        self.assertEqual(set(created), set(intervals))
        for rid, start in created.items():
            self.assertEqual(start, intervals[rid][0].start, rid)
            ended = intervals[rid][-1].end is not None
            self.assertEqual(rid in deleted, ended, rid)
        self.assertEqual(0, rcv.duplicates)


def _resource(msg):
    payload = msg['payload']
    return payload.get('volume_id') or payload.get('instance_id')


def _trait(event, name):
    for trait_name, _dtype, value in event['traits']:
        if trait_name == name:
            return value
