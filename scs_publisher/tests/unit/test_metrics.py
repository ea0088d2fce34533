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
"""Prometheus metrics: what an operator scrapes, from a real ledger, a
real dispatcher and a real receiver that fails once."""

import contextlib
import io
import re
import urllib.error
import urllib.request

from oslo_config import cfg
import sqlalchemy as sa

from scs_publisher.cmd import main as cmd
from scs_publisher import ledger as ledger_mod
from scs_publisher import metrics
from scs_publisher import receiver as receiver_mod
from scs_publisher import runtime as runtime_mod
from scs_publisher import sink_queue
from scs_publisher.tests import base
from scs_publisher.tests.unit import test_reconcile_store as store


def value(text, series):
    match = re.search(r'^%s (\S+)$' % re.escape(series), text, re.MULTILINE)
    return float(match.group(1)) if match else None


class MetricsTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.failures_left = 1

        def fail_once(headers, body):
            if self.failures_left:
                self.failures_left -= 1
                return 503, {'Retry-After': '0'}
            return None
        self.rcv = receiver_mod.Receiver(responder=fail_once).start()
        self.addCleanup(self.rcv.stop)
        self.conf_path = self.write_conf(
            '[scs_publisher]\nstate_path = %s\nsinks = billing\n'
            'metrics_port = 0\n'
            '[sink:billing]\nurl = %s\nretry_schedule = 0\n'
            % (self.tmp, self.rcv.url))
        conf = cfg.ConfigOpts()
        conf([], default_config_files=[self.conf_path])
        self.runtime = runtime_mod.Runtime(conf, start_dispatcher=False)
        self.addCleanup(self.runtime.stop)

    def feed(self):
        create = store.volume_event('volume.create.end', 'v1', store.hours(1))
        delete = store.volume_event('volume.delete.end', 'v2',
                                    store.hours(2), created=store.hours(1))
        self.runtime.accept([create, delete],
                            [('event', 'no message_id', '<Event>')])
        self.runtime.accept([create])  # redelivered: a duplicate
        queue = sink_queue.SinkQueue(self.runtime.ledger, 'billing',
                                     'billing')
        self.runtime.start_dispatcher()
        base.wait_until(lambda: queue.status().pending == 0, 30)
        self.runtime.counters.flush(self.runtime.ledger)

    def test_status_prints_every_metric_in_prometheus_format(self):
        self.feed()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cmd.main(['status', '--format', 'prometheus',
                             '--config-file', self.conf_path])
        text = out.getvalue()
        self.assertEqual(0, code)
        sink = '{sink="billing"}'
        self.assertEqual(0, value(text, 'scs_publisher_sink_pending_items'
                                  + sink))
        # v1 started; v2 started and ended (its delete told both).
        self.assertEqual(3, value(text, 'scs_publisher_sink_delivered_total'
                                  + sink))
        self.assertEqual(1, value(
            text, 'scs_publisher_sink_failed_attempts_total' + sink))
        self.assertEqual(0, value(text, 'scs_publisher_sink_dead_letters'
                                  + sink))
        self.assertEqual(1, value(text,
                                  'scs_publisher_duplicates_dropped_total'))
        self.assertEqual(1, value(text, 'scs_publisher_quarantined_total'))
        self.assertEqual(2, value(
            text, 'scs_publisher_billing_events_total{origin="notification",'
            'type="scs.billing.resource.started"}'))
        self.assertEqual(1, value(text, 'scs_publisher_resources'
                                  '{state="active"}'))
        self.assertEqual(1, value(text, 'scs_publisher_resources'
                                  '{state="ended"}'))
        self.assertIn('# TYPE scs_publisher_sink_pending_items gauge', text)
        self.assertIn('# TYPE scs_publisher_billing_events_total counter',
                      text)

    def test_served_on_a_port(self):
        self.feed()
        server = self.runtime.start_metrics('127.0.0.1', 0)
        url = 'http://127.0.0.1:%d' % server.port
        with urllib.request.urlopen(url + '/metrics', timeout=10) as answer:
            text = answer.read().decode()
            self.assertEqual(metrics.CONTENT_TYPE,
                             answer.headers['Content-Type'])
        self.assertEqual(1, value(text,
                                  'scs_publisher_duplicates_dropped_total'))
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url + '/', timeout=10)
        self.assertEqual(404, caught.exception.code)

    def test_counts_wait_in_memory_until_flushed(self):
        counters = metrics.Counters()
        counters.add(metrics.DUPLICATES, 2)
        counters.flush(self.runtime.ledger)
        counters.add(metrics.DUPLICATES, 3)
        counters.flush(self.runtime.ledger)
        counters.flush(self.runtime.ledger)  # nothing new
        with self.runtime.ledger.read() as conn:
            total = conn.execute(sa.select(
                ledger_mod.ledger_counters.c.value)).scalar()
        self.assertEqual(5, total)


class UpgradeTest(base.TestCase):

    def test_a_version_2_ledger_gets_the_metrics_schema(self):
        url = self.sqlite_url()
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                'CREATE TABLE sink_state (sink VARCHAR(200) PRIMARY KEY, '
                'cursor INTEGER NOT NULL, delivered INTEGER NOT NULL, '
                'lease_owner VARCHAR(200), lease_until FLOAT, '
                'inflight_source VARCHAR(16), inflight_last INTEGER, '
                'attempts INTEGER NOT NULL, next_attempt_at FLOAT, '
                'last_error TEXT)')
            conn.exec_driver_sql(
                "INSERT INTO sink_state VALUES ('old', 5, 5, NULL, NULL, "
                "NULL, NULL, 0, NULL, NULL)")
            # Every other table of versions 1 and 2, as they were.
            ledger_mod.metadata.create_all(conn, tables=[
                t for t in ledger_mod._V1_TABLES + ledger_mod._V2_TABLES
                if t is not ledger_mod.sink_state])
            conn.execute(sa.insert(ledger_mod.ledger_meta).values(
                key=ledger_mod.SCHEMA_VERSION_KEY, value='2'))
        engine.dispose()
        ledger = ledger_mod.Ledger(url)
        self.addCleanup(ledger.dispose)
        status = sink_queue.SinkQueue(ledger, 'old', 'raw').status()
        self.assertEqual((5, 0), (status.delivered, status.failures))
        with ledger.read() as conn:
            version = conn.execute(sa.select(ledger_mod.ledger_meta.c.value)
                                   .where(ledger_mod.ledger_meta.c.key ==
                                          ledger_mod.SCHEMA_VERSION_KEY))
            self.assertEqual('3', version.scalar())
