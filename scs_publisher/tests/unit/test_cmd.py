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
"""The ``scs-publisher`` command, run as operators run it."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys

from oslo_config import cfg

from scs_publisher.cmd import main as cmd
from scs_publisher import intake as intake_mod
from scs_publisher import ledger as ledger_mod
from scs_publisher import receiver as receiver_mod
from scs_publisher import runtime as runtime_mod
from scs_publisher import sink_queue
from scs_publisher.sinks import loader
from scs_publisher.tests import base

SECRET = 'whsec_Y29tbWFuZC1saW5lLXRlc3Q='


class CommandTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.rcv = receiver_mod.Receiver().start()
        self.addCleanup(self.rcv.stop)
        self.conf = self.write_conf(
            '[notification]\nack_on_event_error = False\n'
            '[scs_publisher]\nstate_path = %s\nsinks = hook\n'
            '[sink:hook]\nurl = %s\ncontent = raw\nretry_schedule = 0\n'
            % (self.tmp, self.rcv.url))
        self.ledger = ledger_mod.Ledger(self.sqlite_url())
        self.addCleanup(self.ledger.dispose)

    def run_cmd(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cmd.main(list(args) + ['--config-file', self.conf])
        return code, out.getvalue(), err.getvalue()

    def test_check_config_ok(self):
        code, out, _ = self.run_cmd('check-config')
        self.assertEqual(0, code, out)
        self.assertIn('sink hook: http://127.0.0.1:', out)
        self.assertIn('ledger sqlite:///', out)
        self.assertIn('billing_resources.yaml: 7 types', out)
        self.assertNotIn('ack_on_event_error is True', out)

    def test_check_config_validates_resource_definitions(self):
        bad = self.write_conf('resources: {volume: {colour: red}}\n',
                              'defs.yaml')
        with open(self.conf, 'a') as f:
            f.write('[scs_publisher]\nresource_definitions = %s\n' % bad)
        code, out, _ = self.run_cmd('check-config')
        self.assertEqual(2, code)
        self.assertIn('ERROR: %s: resource type "volume": colour' % bad,
                      out)

    def test_check_config_names_the_bad_option(self):
        with open(self.conf, 'a') as f:
            f.write('batch_size = many\n')
        code, out, _ = self.run_cmd('check-config')
        self.assertEqual(2, code)
        self.assertIn('ERROR: [sink:hook] batch_size', out)

    def test_check_config_warns_about_acked_events(self):
        with open(self.conf, 'a') as f:
            f.write('[notification]\nack_on_event_error = True\n')
        code, out, _ = self.run_cmd('check-config')
        self.assertEqual(0, code)
        self.assertIn('ack_on_event_error is True', out)

    def test_check_config_unreachable_ledger(self):
        with open(self.conf, 'a') as f:
            f.write('[scs_publisher]\nconnection = '
                    'mysql+pymysql://u:hidden@127.0.0.1:1/x\n')
        code, out, _ = self.run_cmd('check-config')
        self.assertEqual(1, code)
        self.assertIn('ERROR: ledger mysql+pymysql://u:***@127.0.0.1:1/x',
                      out)
        self.assertNotIn('hidden', out)

    def test_status_and_deliver_until_idle(self):
        intake_mod.Intake(self.ledger).accept(
            [base.record('a'), base.record('b')],
            [('event', 'no message_id', '<Event>')])
        code, out, _ = self.run_cmd('status', '--format', 'json')
        self.assertEqual(0, code)
        status = json.loads(out)
        self.assertEqual(1, status['quarantined'])
        self.assertEqual({'resources': 0, 'active': 0, 'settling': 0,
                          'open_usage_windows': 0}, status['reconciler'])
        (row,) = status['sinks']
        self.assertEqual(('hook', 2, 0), (row['sink'], row['pending'],
                                          row['delivered']))
        code, _, err = self.run_cmd('deliver', '--until-idle', '30')
        self.assertEqual(0, code, err)
        self.assertEqual(['a', 'b'],
                         [i['message_id'] for i in self.rcv.items])
        code, out, _ = self.run_cmd('status')
        self.assertEqual(0, code)
        self.assertRegex(out, r'hook\s+raw\s+0\s+-\s+2\s+-\s+0')
        self.assertIn('Quarantined inputs (malformed, not delivered): 1', out)
        self.assertIn('Billable resources: 0 known, 0 active', out)

    def test_status_counts_billable_resources(self):
        """Only with a billing sink: raw sinks alone never pay for the
        reconciler."""
        from scs_publisher.tests.unit import test_reconcile_store as store
        records = [
            store.volume_event('volume.create.end', 'v1', store.hours(1)),
            store.volume_event('volume.create.end', 'v2', store.hours(1)),
            store.volume_event('volume.delete.end', 'v2', store.hours(2))]
        for billing_sink in (False, True):
            if billing_sink:
                with open(self.conf) as f:
                    text = f.read().replace('sinks = hook',
                                            'sinks = hook, bill')
                with open(self.conf, 'w') as f:
                    f.write(text + '[sink:bill]\nurl = %s\n' % self.rcv.url)
            conf = cfg.ConfigOpts()
            conf([], default_config_files=[self.conf])
            runtime = runtime_mod.Runtime(conf, start_dispatcher=False)
            self.addCleanup(runtime.stop)
            self.assertEqual(billing_sink,
                             runtime.reconcile_store is not None)
            runtime.accept(records if billing_sink else [store.volume_event(
                'volume.create.end', 'v0', store.hours(1))])
        code, out, _ = self.run_cmd('status', '--format', 'json')
        self.assertEqual({'resources': 2, 'active': 1, 'settling': 0,
                          'open_usage_windows': 0},
                         json.loads(out)['reconciler'])

    def test_dead_letters_and_replay(self):
        intake_mod.Intake(self.ledger).accept([base.record('a')])
        queue = sink_queue.SinkQueue(self.ledger, 'hook', 'raw')
        batch = queue.head('test', 10, 60)
        queue.dead_letter('test', batch, batch.items, 'HTTP 422 from x',
                          422, 'no')
        queue.release('test')
        code, out, _ = self.run_cmd('dead-letters')
        self.assertEqual(0, code)
        self.assertIn('hook #1 event a volume.create.end', out)
        self.assertIn('HTTP 422 from x', out)
        code, out, _ = self.run_cmd('replay', '--sink', 'hook')
        self.assertEqual((0, '1 dead letters queued for hook\n'),
                         (code, out))
        code, _, err = self.run_cmd('deliver', '--until-idle', '30')
        self.assertEqual(0, code, err)
        self.assertEqual(['a'], [i['message_id'] for i in self.rcv.items])

    def test_replay_time_range(self):
        intake_mod.Intake(self.ledger).accept([base.record('a')])
        code, out, _ = self.run_cmd(
            'replay', '--sink', 'hook', '--since', '2000-01-01T00:00:00',
            '--until', '2100-01-01T00:00:00')
        self.assertEqual((0, '1 items accepted in that range queued for '
                             'hook\n'), (code, out))

    def test_usage_errors(self):
        code, _, err = self.run_cmd('replay', '--sink', 'nope')
        self.assertEqual(2, code)
        self.assertIn('no sink "nope"', err)
        code, _, err = self.run_cmd('replay', '--sink', 'hook', '--since',
                                    'yesterday', '--until', 'today')
        self.assertEqual(2, code)
        self.assertIn('not an ISO 8601 time', err)


class ReceiveCommandTest(base.TestCase):

    def test_receive_verifies_prints_and_stores(self):
        store = os.path.join(self.tmp, 'received.jsonl')
        proc = subprocess.Popen(
            [sys.executable, '-m', 'scs_publisher.cmd.main', 'receive',
             '--port', '0', '--secret', SECRET, '--store', store],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(proc.kill)
        banner = proc.stderr.readline()
        url = re.search(r'(http://\S+)', banner).group(1)
        (sink,), errors = loader.load_sinks(self.make_conf(
            '[scs_publisher]\nsinks = r\n[sink:r]\nurl = %s\nsecret = %s\n'
            % (url, SECRET)))
        from scs_publisher.tests.unit import test_sinks
        sink.driver.send(test_sinks.delivery([test_sinks.item(1)]))
        self.assertEqual('m1', json.loads(proc.stdout.readline())
                         ['message_id'])
        proc.terminate()
        proc.wait(10)
        with open(store) as f:
            self.assertEqual(['m1'], [json.loads(line)['message_id']
                                      for line in f])
        # Unsigned requests are refused when a secret is set.
        self.assertIn('accepted 1 items', proc.stderr.read())

    def test_receive_summarizes_stored_billing_events(self):
        """Billing events from a scenario, stored by a receiver, summed
        per project into resource-hours and usage."""
        from scs_publisher.tests.unit import test_billing_formats as fmt
        from scs_publisher.formats import ceilometer
        store = os.path.join(self.tmp, 'received.jsonl')
        started = fmt.ended_event(type='resource.started', id='s1',
                                  effective_at=fmt.STARTED, ended_at=None)
        items = [ceilometer.billing_event(e.as_dict()) for e in (
            started, fmt.ended_event())]
        items.append({'message_id': 'raw-1', 'event_type':
                      'volume.create.end', 'traits': []})
        with open(store, 'w') as f:
            f.writelines(json.dumps(i) + '\n' for i in items)
        out = subprocess.run(
            [sys.executable, '-m', 'scs_publisher.cmd.main', 'receive',
             '--summarize', store, '--period-end', '2026-12-01T08:00:00Z'],
            capture_output=True, text=True, check=True).stdout
        self.assertIn('project p1', out)
        # 30 Nov 08:00 to 1 Dec 08:00: 24 hours of one volume.
        self.assertRegex(out, r'volume\s+24\.00 resource-hours')
