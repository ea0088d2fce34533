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
"""The dispatcher against real ledgers (SQLite, MariaDB, PostgreSQL) and
real loopback receivers that fail on cue."""

import json
import threading

from scs_publisher import dispatch
from scs_publisher import intake as intake_mod
from scs_publisher import ledger as ledger_mod
from scs_publisher import receiver as receiver_mod
from scs_publisher import sink_queue
from scs_publisher.sinks import loader
from scs_publisher.tests import base


class Script:
    """Answers the receiver's requests from a list, then lets them through.
    Records the webhook-id of every request."""

    def __init__(self, answers=()):
        self.answers = list(answers)
        self.ids = []
        self.lock = threading.Lock()

    def __call__(self, headers, body):
        with self.lock:
            self.ids.append(headers['webhook-id'])
            return self.answers.pop(0) if self.answers else None


class PoisonScript(Script):
    """Refuses (422) every batch that contains the item ``bad``."""

    def __call__(self, headers, body):
        super().__call__(headers, body)
        ids = [i['message_id'] for i in json.loads(body)]
        return (422, {}) if 'bad' in ids else None


class DispatchTestCase(base.BackendMixin, base.TestCase):

    def setUp(self):
        super().setUp()
        self.ledger = ledger_mod.Ledger(self.ledger_url())
        self.addCleanup(self.ledger.dispose)
        self.intake = intake_mod.Intake(self.ledger)
        self.dispatchers = []
        self.addCleanup(self._stop)

    def _stop(self):
        for d in self.dispatchers:
            d.stop(timeout=10)

    def receiver(self, script=None):
        rcv = receiver_mod.Receiver(responder=script).start()
        self.addCleanup(rcv.stop)
        return rcv

    def sinks(self, text):
        found, errors = loader.load_sinks(self.make_conf(text))
        self.assertEqual([], errors)
        return found

    def dispatcher(self, sinks_, **kwargs):
        kwargs.setdefault('poll_interval', 0.05)
        d = dispatch.Dispatcher(self.ledger, sinks_, 'RegionOne', **kwargs)
        d.start()
        self.dispatchers.append(d)
        return d

    def accept(self, keys):
        self.intake.accept([base.record(k) for k in keys])
        for d in self.dispatchers:
            d.notify()

    def status(self, name='hook'):
        return sink_queue.SinkQueue(self.ledger, name, 'raw').status()


def hook(url, extra=''):
    return ('[scs_publisher]\nsinks = hook\n[sink:hook]\nurl = %s\n'
            'content = raw\nretry_schedule = 0\n%s' % (url, extra))


class BackoffTest(base.TestCase):

    def test_jitter_stays_within_twenty_percent(self):
        self.assertAlmostEqual(8.0, dispatch.backoff([10], 1,
                                                     rand=lambda: 0.0))
        self.assertAlmostEqual(12.0, dispatch.backoff([10], 1,
                                                      rand=lambda: 1.0))

    def test_last_step_repeats(self):
        self.assertEqual(60.0, dispatch.backoff([5, 60], 9,
                                                rand=lambda: 0.5))

    def test_retry_after_wins(self):
        self.assertEqual(3.0, dispatch.backoff([5], 1, retry_after=3.0))

    def test_delivery_id_is_stable_for_the_same_items(self):
        items = [sink_queue.OutboxItem(i, 'event', 'm', 'e', 'p', 0.0, '{}')
                 for i in (4, 5, 6)]
        first = dispatch.delivery_id('R', 'hook', 'outbox', items)
        self.assertEqual(first, dispatch.delivery_id('R', 'hook', 'outbox',
                                                     items))
        self.assertNotEqual(first, dispatch.delivery_id('R', 'other',
                                                        'outbox', items))
        self.assertNotEqual(first, dispatch.delivery_id('R', 'hook',
                                                        'outbox', items[:2]))


class DispatcherTest(DispatchTestCase):

    def test_delivers_everything_in_order(self):
        rcv = self.receiver()
        self.dispatcher(self.sinks(hook(rcv.url, 'batch_size = 7\n')))
        keys = ['k%02d' % i for i in range(50)]
        self.accept(keys)
        self.assertTrue(rcv.wait_for(50, 10))
        self.assertEqual(keys, [i['message_id'] for i in rcv.items])
        base.wait_until(lambda: self.status().pending == 0, 5)
        self.assertEqual(50, self.status().delivered)

    def test_503_then_429_then_200_loses_nothing_and_sends_once(self):
        script = Script([(503, {}), (503, {}), (503, {}),
                         (429, {'Retry-After': '1'})])
        rcv = self.receiver(script)
        self.accept(['a', 'b', 'c'])
        self.dispatcher(self.sinks(hook(rcv.url)))
        self.assertTrue(rcv.wait_for(3, 15))
        self.assertEqual(['a', 'b', 'c'],
                         sorted(i['message_id'] for i in rcv.items))
        self.assertEqual(0, rcv.duplicates)
        # Every retry of the batch carried the same webhook-id.
        self.assertEqual(1, len(set(script.ids[:5])), script.ids)
        base.wait_until(lambda: self.status().pending == 0, 5)
        self.assertEqual(0, self.status().dead_letters)

    def test_refused_item_is_found_and_dead_lettered_alone(self):
        script = PoisonScript()
        rcv = self.receiver(script)
        keys = ['k%d' % i for i in range(8)]
        keys[5] = 'bad'
        self.accept(keys)
        self.dispatcher(self.sinks(hook(rcv.url)))
        base.wait_until(lambda: self.status().pending == 0, 10,
                        message='the batch to be handled')
        self.assertEqual(sorted(set(keys) - {'bad'}),
                         sorted(i['message_id'] for i in rcv.items))
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        (dead,) = queue.dead_letter_list()
        self.assertEqual(('bad', 422), (dead.item_id, dead.status_code))
        self.assertIn('scripted answer', dead.response)

    def test_gives_up_after_max_retry_age(self):
        rcv = self.receiver(Script([(503, {})] * 100))
        self.accept(['a'])
        self.dispatcher(self.sinks(hook(rcv.url, 'max_retry_age = 0\n')))
        base.wait_until(lambda: self.status().dead_letters == 1, 10)
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        self.assertIn('gave up after 1 attempts',
                      queue.dead_letter_list()[0].reason)

    def test_replayed_dead_letters_arrive(self):
        script = Script([(422, {})])
        rcv = self.receiver(script)
        self.accept(['a'])
        self.dispatcher(self.sinks(hook(rcv.url)))
        base.wait_until(lambda: self.status().dead_letters == 1, 10)
        sink_queue.SinkQueue(self.ledger, 'hook', 'raw')\
            .replay_dead_letters()
        self.dispatchers[0].notify()
        self.assertTrue(rcv.wait_for(1, 10))
        self.assertEqual('a', rcv.items[0]['message_id'])

    def test_a_dead_sink_does_not_delay_another(self):
        live = self.receiver()
        dead = self.receiver(Script([(503, {})] * 10000))
        sinks_ = self.sinks(
            '[scs_publisher]\nsinks = dead, live\n'
            '[sink:dead]\nurl = %s\ncontent = raw\nretry_schedule = 60\n'
            'timeout = 5\n'
            '[sink:live]\nurl = %s\ncontent = raw\n' % (dead.url, live.url))
        self.dispatcher(sinks_)
        self.accept(['a', 'b'])
        self.assertTrue(live.wait_for(2, 5))
        self.accept(['c'])
        self.assertTrue(live.wait_for(3, 5))
        self.assertEqual(3, self.status('dead').pending)

    def test_filters_skip_items_without_blocking(self):
        rcv = self.receiver()
        self.intake.accept([
            base.record('v1'),
            base.record('i1', event_type='image.update'),
            base.record('v2', project_id='other')])
        self.dispatcher(self.sinks(hook(
            rcv.url, 'event_types = volume.*\nprojects = p1\n')))
        base.wait_until(lambda: self.status().pending == 0, 5)
        self.assertEqual(['v1'], [i['message_id'] for i in rcv.items])

    def test_two_dispatchers_send_each_batch_once(self):
        script = Script()
        rcv = self.receiver(script)
        sinks_text = hook(rcv.url, 'batch_size = 5\n')
        self.dispatcher(self.sinks(sinks_text))
        self.dispatcher(self.sinks(sinks_text))
        keys = ['k%03d' % i for i in range(200)]
        for start in range(0, 200, 20):
            self.accept(keys[start:start + 20])
        self.assertTrue(rcv.wait_for(200, 20))
        base.wait_until(lambda: self.status().pending == 0, 5)
        self.assertEqual(0, rcv.duplicates)
        self.assertEqual(len(script.ids), len(set(script.ids)))

    def test_new_items_are_picked_up_from_another_process_by_polling(self):
        rcv = self.receiver()
        self.dispatcher(self.sinks(hook(rcv.url)), poll_interval=0.1)
        # Written without notify(), as another process would.
        self.intake.accept([base.record('x')])
        self.assertTrue(rcv.wait_for(1, 5))


class MysqlDispatcherTest(DispatcherTest):
    backend = 'mysql'


class PostgresqlDispatcherTest(DispatcherTest):
    backend = 'postgresql'
