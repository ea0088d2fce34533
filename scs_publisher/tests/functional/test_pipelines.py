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
"""scs:// inside Ceilometer's real pipeline managers and endpoints, with
the entry point as installed, delivering to real loopback receivers."""

import json
import os
import shutil
import threading
import time

from ceilometer.event import models
from ceilometer import sample as sample_mod
import sqlalchemy as sa

from scs_publisher import inprocess
from scs_publisher import ledger as ledger_mod
from scs_publisher import publisher as publisher_mod
from scs_publisher import receiver as receiver_mod
from scs_publisher import runtime as runtime_mod
from scs_publisher import simulation
from scs_publisher import sink_queue
from scs_publisher.tests import base

SECRET = 'whsec_c2NzLXB1Ymxpc2hlci10ZXN0LXNlY3JldA=='


class BodyRecorder:
    """Keeps every request body a receiver gets (and lets it through)."""

    def __init__(self):
        self.bodies = []
        self.lock = threading.Lock()

    def __call__(self, headers, body):
        with self.lock:
            self.bodies.append(body)


class PipelineTestCase(base.TestCase):

    def start_receiver(self, **kwargs):
        rcv = receiver_mod.Receiver(**kwargs).start()
        self.addCleanup(rcv.stop)
        return rcv

    def pipelines(self, conf_text, publishers=('scs://',)):
        path = self.write_conf(
            '[DEFAULT]\nlog_file = %s\n[notification]\n'
            'ack_on_event_error = False\n%s' % (base.LOG_FILE, conf_text))
        conf = inprocess.prepare_conf([path], self.tmp, publishers)
        pipes = inprocess.Pipelines(conf)
        self.addCleanup(self._stop_runtime, conf)
        return conf, pipes

    @staticmethod
    def _stop_runtime(conf):
        runtime = runtime_mod._RUNTIMES.pop((id(conf), os.getpid()), None)
        if runtime:
            runtime.stop()


class CompatibilityTest(PipelineTestCase):

    def test_sinks_get_exactly_what_ceilometer_http_publisher_posts(self):
        """Every event and sample reaches the scs sink, signed, in the
        bytes Ceilometer's own http publisher posts for it."""
        stock_bodies, ours = BodyRecorder(), BodyRecorder()
        stock = self.start_receiver(responder=stock_bodies)
        rcv = self.start_receiver(secrets=[SECRET], responder=ours)
        conf, pipes = self.pipelines(
            '[scs_publisher]\nstate_path = %s\nsinks = hook\n'
            '[sink:hook]\nurl = %s\ncontent = raw\nsecret = %s\n'
            'batch_size = 1\n' % (self.tmp, rcv.url, SECRET),
            publishers=('scs://', stock.url))
        messages = simulation.notifications(120, seed=3)
        for start in range(0, len(messages), 40):
            pipes.feed(messages[start:start + 40])

        stock_items = [item for body in stock_bodies.bodies
                       for item in json.loads(body)]
        self.assertTrue(rcv.wait_for(len(stock_items), 30),
                        '%d of %d items arrived' % (len(rcv.items),
                                                    len(stock_items)))
        self.assertEqual([], rcv.rejected)  # every signature verified
        events = [b for b in stock_bodies.bodies
                  if b'"message_id"' in b]
        self.assertEqual(120, len(events))
        # One event per stock request: the bodies are byte-identical.
        self.assertEqual(set(events),
                         set(ours.bodies) & set(events))
        # Samples: ours come one per request (batch_size = 1); each is
        # the stock encoding of that sample.
        stock_samples = {json.dumps([i]).encode() for i in stock_items
                         if 'counter_name' not in i and 'name' in i}
        our_samples = {b for b in ours.bodies if b'"message_id"' not in b}
        self.assertEqual(stock_samples, our_samples)
        self.assertGreater(len(our_samples), 100)

    def test_cloudevents_sink(self):
        rcv = self.start_receiver()
        conf, pipes = self.pipelines(
            '[scs_publisher]\nstate_path = %s\nsinks = ce\n'
            '[sink:ce]\nurl = %s\ncontent = raw\nformat = cloudevents\n'
            'event_types = volume.*\n' % (self.tmp, rcv.url))
        messages = [m for m in simulation.notifications(40, seed=4)
                    if m['event_type'].startswith('volume.')]
        pipes.feed(messages)
        self.assertTrue(rcv.wait_for(len(messages), 20))
        types = {i['type'] for i in rcv.items}
        self.assertIn('org.openstack.ceilometer.event.volume.create.end',
                      types)
        self.assertIn('org.openstack.ceilometer.sample.volume.size', types)
        self.assertTrue(all(i['source'] == '/scs/RegionOne'
                            and i['specversion'] == '1.0'
                            for i in rcv.items))


class RedeliveryTest(PipelineTestCase):

    def test_redelivered_notifications_reach_the_sink_once(self):
        rcv = self.start_receiver()
        conf, pipes = self.pipelines(
            '[scs_publisher]\nstate_path = %s\nsinks = hook\n'
            '[sink:hook]\nurl = %s\ncontent = raw\n' % (self.tmp, rcv.url))
        messages = simulation.notifications(60, seed=5)
        pipes.feed(messages)
        pipes.feed(messages)  # RabbitMQ redelivers the whole batch
        pipes.feed(messages[:10])
        runtime = runtime_mod.get_runtime(conf)
        queue = sink_queue.SinkQueue(runtime.ledger, 'hook', 'raw')
        base.wait_until(lambda: queue.status().pending == 0, 20)
        self.assertEqual(0, rcv.duplicates)
        events = [i for i in rcv.items if 'message_id' in i]
        self.assertEqual(60, len(events))
        self.assertEqual(len(rcv.items), queue.status().delivered)


class LedgerOutageTest(PipelineTestCase):
    """The ledger path is a directory at first, so SQLite cannot open it;
    then the directory goes and the ledger comes up."""

    def setUp(self):
        super().setUp()
        self.ledger_path = os.path.join(self.tmp, 'ledger-here')
        os.mkdir(self.ledger_path)
        self.rcv = self.start_receiver()
        self.conf, self.pipes = self.pipelines(
            '[scs_publisher]\nstate_path = %s\nconnection = sqlite:///%s\n'
            'sinks = hook\n[sink:hook]\nurl = %s\ncontent = raw\n'
            % (self.tmp, self.ledger_path, self.rcv.url))

    def test_events_are_requeued_and_samples_journaled(self):
        volumes = [m for m in simulation.notifications(40, seed=6)
                   if m['event_type'].startswith('volume.')][:6]
        requeue = self.pipes.feed(volumes)
        self.assertTrue(requeue, 'the batch must go back to RabbitMQ')
        runtime = runtime_mod.get_runtime(self.conf)
        self.assertTrue(runtime.journal.pending())

        shutil.rmtree(self.ledger_path)
        # RabbitMQ redelivers; the journal is replayed on the first commit.
        self.assertFalse(self.pipes.feed(volumes))
        self.assertFalse(runtime.journal.pending())
        queue = sink_queue.SinkQueue(runtime.ledger, 'hook', 'raw')
        base.wait_until(lambda: queue.status().pending == 0, 20)
        events = [i for i in self.rcv.items if 'message_id' in i]
        samples = [i for i in self.rcv.items if 'message_id' not in i]
        self.assertEqual(6, len(events))
        self.assertEqual(6, len(samples))  # journaled and redelivered: once
        self.assertEqual(0, self.rcv.duplicates)


class BadInputTest(PipelineTestCase):

    def test_malformed_items_are_quarantined_and_counted(self):
        conf, pipes = self.pipelines(
            '[scs_publisher]\nstate_path = %s\n' % self.tmp)
        # One instance per pipeline manager, as Ceilometer builds them.
        publishers = pipes.publishers()
        self.assertEqual(2, len(publishers))
        publisher = publishers[0]
        self.assertIsInstance(publisher, publisher_mod.ScsPublisher)
        good = sample_mod.Sample('volume.size', 'gauge', 'GiB', 1, 'u', 'p',
                                 'r', timestamp='2026-12-03T10:00:00')
        bad = sample_mod.Sample('volume.size', 'gauge', 'GiB', 1, 'u', 'p',
                                'r', timestamp='2026-12-03T10:00:00',
                                resource_metadata={'x': object()})
        publisher.publish_samples([good, bad])
        publisher.publish_events([models.Event(
            None, 'volume.create.end', '2026-12-03T10:00:00', [], {})])
        ledger = runtime_mod.get_runtime(conf).ledger
        with ledger.begin() as c:
            reasons = sorted(r.kind for r in c.execute(
                sa.select(ledger_mod.quarantine)))
            outbox = c.execute(sa.select(sa.func.count()).select_from(
                ledger_mod.outbox)).scalar()
        self.assertEqual(['event', 'sample'], reasons)
        self.assertEqual(1, outbox)

    def test_constructor_never_touches_network_or_ledger(self):
        started = time.monotonic()
        conf, pipes = self.pipelines(
            '[scs_publisher]\nstate_path = %s\ndispatch_in_agent = False\n'
            'connection = mysql+pymysql://u:p@127.0.0.1:1/nothing\n'
            'sinks = hook\n[sink:hook]\nurl = https://billing.invalid/\n'
            % self.tmp)
        self.assertEqual(2, len(pipes.publishers()))
        self.assertLess(time.monotonic() - started, 30)
        runtime = runtime_mod.get_runtime(conf)
        self.assertIsNone(runtime.ledger._engine)

    def test_broken_sink_config_keeps_items_in_the_ledger(self):
        conf, pipes = self.pipelines(
            '[scs_publisher]\nstate_path = %s\nsinks = hook\n'
            '[sink:hook]\nurl = gopher://x/\n' % self.tmp)
        runtime = runtime_mod.get_runtime(conf)
        self.assertIn('[sink:hook] url scheme', runtime.config_errors[0])
        pipes.feed(simulation.notifications(5, seed=1))
        with runtime.ledger.begin() as c:
            count = c.execute(sa.select(sa.func.count()).select_from(
                ledger_mod.outbox)).scalar()
        self.assertGreaterEqual(count, 5)
