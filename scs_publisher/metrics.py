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
"""Prometheus metrics for operators.

Everything is read from the ledger, so any process - an agent worker,
``scs-publisher deliver``, ``scs-publisher status --format prometheus`` -
shows the whole deployment. Counters that would cost a write per
notification (duplicates dropped, billing events by origin) are kept in
memory per process and added to the ledger's ``ledger_counters`` by
housekeeping once a minute, so they lag by up to a minute and lose at most
that minute's increments when a process is killed.
"""

import collections
import http.server
import threading

from oslo_log import log
import sqlalchemy as sa

from scs_publisher import ledger as ledger_mod

LOG = log.getLogger(__name__)

PREFIX = 'scs_publisher_'
DUPLICATES = PREFIX + 'duplicates_dropped_total'
BILLING_EVENTS = PREFIX + 'billing_events_total'
CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

_HELP = {
    'sink_pending_items': ('gauge', 'Items waiting for delivery.'),
    'sink_oldest_pending_seconds': (
        'gauge', 'Age of the oldest item waiting for delivery.'),
    'sink_delivered_total': ('counter', 'Items delivered (or filtered '
                             'out).'),
    'sink_failed_attempts_total': ('counter', 'Delivery attempts that '
                                   'failed and were retried.'),
    'sink_dead_letters': ('gauge', 'Items set aside as dead letters.'),
    'duplicates_dropped_total': ('counter', 'Samples and events dropped '
                                 'as duplicates at intake.'),
    'quarantined_total': ('counter', 'Inputs quarantined as malformed.'),
    'billing_events_total': ('counter', 'Billing events derived, by '
                             'origin and type.'),
    'resources': ('gauge', 'Billable resources the reconciler knows, by '
                  'state.'),
}


def series(name, **labels):
    """A series key: ``name{label="value",...}``."""
    if not labels:
        return name
    return '%s{%s}' % (name, ','.join(
        '%s="%s"' % (k, str(v).replace('\\', r'\\').replace('"', r'\"'))
        for k, v in sorted(labels.items())))


class Counters:
    """Increments of this process, not yet in the ledger."""

    def __init__(self):
        self._pending = collections.Counter()
        self._lock = threading.Lock()

    def add(self, key, count=1):
        if count:
            with self._lock:
                self._pending[key] += count

    @ledger_mod.translate_errors
    def flush(self, ledger):
        """Add the increments to the ledger's counters."""
        with self._lock:
            pending, self._pending = self._pending, collections.Counter()
        if not pending:
            return
        table = ledger_mod.ledger_counters
        try:
            with ledger.begin() as conn:
                for key, count in sorted(pending.items()):
                    updated = conn.execute(
                        sa.update(table).where(table.c.name == key)
                        .values(value=table.c.value + count)).rowcount
                    if not updated:
                        conn.execute(sa.insert(table).values(
                            name=key, value=count))
        except Exception:
            with self._lock:
                self._pending.update(pending)  # next time
            raise


@ledger_mod.translate_errors
def _counters(ledger):
    table = ledger_mod.ledger_counters
    with ledger.read() as conn:
        return {row.name: row.value for row in conn.execute(sa.select(table))}


def collect(ledger, sinks):
    """Every metric as ``(name, kind, help, [(series key, value)])``."""
    # Imported here: the reconciler and the queues count into this module.
    from scs_publisher import reconcile_store
    from scs_publisher import sink_queue
    families = collections.OrderedDict()

    def put(short, value, **labels):
        name = PREFIX + short
        families.setdefault(name, []).append(
            (series(name, **labels), value))

    for sink in sinks:
        status = sink_queue.SinkQueue(ledger, sink.name,
                                      sink.content).status()
        put('sink_pending_items', status.pending, sink=sink.name)
        put('sink_oldest_pending_seconds', status.oldest_pending_age or 0,
            sink=sink.name)
        put('sink_delivered_total', status.delivered, sink=sink.name)
        put('sink_failed_attempts_total', status.failures, sink=sink.name)
        put('sink_dead_letters', status.dead_letters, sink=sink.name)
    counters = _counters(ledger)
    put('duplicates_dropped_total', counters.get(DUPLICATES, 0))
    put('quarantined_total', ledger.quarantined())
    for key, value in sorted(counters.items()):
        if key.startswith(BILLING_EVENTS + '{'):
            families.setdefault(BILLING_EVENTS, []).append((key, value))
    state = reconcile_store.status(ledger)
    put('resources', state['active'], state='active')
    put('resources', state['resources'] - state['active'], state='ended')
    return [(name, _HELP[name[len(PREFIX):]][0],
             _HELP[name[len(PREFIX):]][1], rows)
            for name, rows in families.items()]


def render(families):
    """The Prometheus text exposition format."""
    lines = []
    for name, kind, text, rows in families:
        lines.append('# HELP %s %s' % (name, text))
        lines.append('# TYPE %s %s' % (name, kind))
        for key, value in rows:
            lines.append('%s %s' % (key, _number(value)))
    return '\n'.join(lines) + '\n'


def _number(value):
    if isinstance(value, float) and not value.is_integer():
        return repr(round(value, 3))
    return str(int(value))


class MetricsServer:
    """Serves ``/metrics`` on a port; started by the dispatcher's process
    when ``[scs_publisher] metrics_port`` is set."""

    def __init__(self, host, port, produce):
        handler = type('Handler', (_Handler,), {'produce': staticmethod(
            produce)})
        self.server = http.server.ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name='scs-metrics', daemon=True)

    @property
    def port(self):
        return self.server.server_address[1]

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    produce = None

    def do_GET(self):
        if self.path.split('?')[0] != '/metrics':
            self.send_error(404)
            return
        try:
            body = self.produce().encode('utf-8')
            status = 200
        except ledger_mod.LedgerUnavailable as exc:
            body = ('ledger unavailable: %s\n' % exc).encode('utf-8')
            status = 503
        self.send_response(status)
        self.send_header('Content-Type', CONTENT_TYPE)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass
