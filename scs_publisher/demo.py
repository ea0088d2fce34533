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
"""``scs-publisher demo``: a small cloud billed end to end, no services.

A scenario (:mod:`scs_publisher.scenario`) plays a few simulated days of a
small cloud - instances, volumes, snapshots, backups, images, floating IPs,
object storage - as the notifications nova, cinder, glance and neutron
send and the polling agent's samples, with some notifications dropped,
some delivered twice and the rest reordered. They go through Ceilometer's
real pipelines into ``scs://`` (an SQLite ledger in a temporary
directory) and on to the reference receiver on a loopback port, which
fails the first deliveries (a sink outage). At the end the billing events
the receiver got are turned into resource-hours and usage per project and
set beside the truth, and an HTML report shows every resource's timeline.
"""

import collections
import contextlib
import datetime
import io
import sys
import tempfile
import threading
import time

from scs_publisher import billing
from scs_publisher import billing_stream
from scs_publisher import inprocess
from scs_publisher import receiver as receiver_mod
from scs_publisher import report
from scs_publisher import runtime as runtime_mod
from scs_publisher import scenario as scenario_mod
from scs_publisher import sink_queue

SECRET = 'whsec_ZGVtby1zZWNyZXQtZm9yLXNjcy1wdWJsaXNoZXI='
SETTLE = 1.0


class _Outage:
    """Answers 503 to the first ``count`` deliveries, and remembers when."""

    def __init__(self, count):
        self.left = count
        self.failed = 0
        #: ``(time, accepted)`` of every delivery.
        self.deliveries = []
        self._lock = threading.Lock()

    def __call__(self, headers, body):
        with self._lock:
            refused = self.left > 0
            self.deliveries.append((time.time(), not refused))
            if refused:
                self.left -= 1
                self.failed += 1
                return 503, {'Retry-After': '1'}
        return None


def _progress(out, text, final=False):
    """One line rewritten in place on a terminal; elsewhere a line now
    and then."""
    if out.isatty():
        out.write('\r' + text.ljust(78) + ('\n' if final else ''))
    else:
        out.write(text + '\n')
    out.flush()


def truth_summary(scenario, begin, until):
    """Resource-hours and usage per project, as they really were."""
    projects = collections.defaultdict(lambda: {
        'resource_hours': collections.Counter(),
        'usage': collections.Counter()})
    for truth in scenario.truth.values():
        end = until if truth.end is None else min(truth.end, until)
        seconds = max(0.0, end - max(truth.start, begin))
        projects[truth.project_id]['resource_hours'][
            truth.resource_type] += seconds / 3600.0
    for project, polled in scenario.storage.items():
        for _at, value in polled:
            projects[project]['usage']['storage.objects.size'] += value
    return projects


def run(args, out=sys.stdout):
    start = datetime.datetime.utcnow().replace(
        hour=0, minute=0, second=0, microsecond=0) - datetime.timedelta(
        days=args.days + 1)
    scenario = scenario_mod.Scenario(
        seed=args.seed, resources=args.resources, days=args.days,
        start=start).build()
    outage = _Outage(args.outage)
    rcv = receiver_mod.Receiver(secrets=[SECRET], responder=outage).start()
    with tempfile.TemporaryDirectory(prefix='scs-demo-') as directory:
        conf_path = inprocess.write_conf(
            directory, 'billing', {'url': rcv.url, 'secret': SECRET,
                                   'retry_schedule': 1},
            {'reconcile_settle': SETTLE})
        conf = inprocess.prepare_conf([conf_path], directory, ['scs://'])
        # A JSONPath library prints while Ceilometer loads its meter
        # definitions; keep the demo's output to what it shows.
        with contextlib.redirect_stdout(io.StringIO()):
            pipelines = inprocess.Pipelines(conf)
        runtime = runtime_mod.get_runtime(conf)
        queue = sink_queue.SinkQueue(runtime.ledger, 'billing', 'billing')
        notifications = sum(len(b) for b in scenario.deliveries)
        print('A cloud of %d resources in %d projects over %g days: %d '
              'notifications and polling messages (%d dropped, %d '
              'duplicated, the rest reordered), through Ceilometer\'s '
              'pipelines into scs://.' % (
                  len(scenario.truth), len(scenario.projects), args.days,
                  notifications, scenario.dropped, scenario.duplicated),
              file=out)
        started = time.monotonic()
        every = 10 if out.isatty() else max(1, len(scenario.deliveries) // 4)
        for number, batch in enumerate(scenario.deliveries, 1):
            pipelines.feed(batch)
            if number % every == 0 or number == len(scenario.deliveries):
                _progress(out, '  %d/%d batches; billing events delivered: '
                          '%d, waiting in the ledger: %d' % (
                              number, len(scenario.deliveries),
                              len(rcv.items), queue.status().pending))
        fed = time.monotonic() - started
        runtime.reconcile_store.review(time.time() + SETTLE + 1)
        runtime.dispatcher.notify()
        deadline = time.monotonic() + 120
        while queue.status().pending and time.monotonic() < deadline:
            time.sleep(0.1)
        status = queue.status()
        _progress(out, '  done in %.1f s; billing events delivered: %d, '
                  'waiting: %d' % (fed, len(rcv.items), status.pending),
                  final=True)
        runtime.stop()
    rcv.stop()

    stream = billing_stream.BillingStream()
    for item in rcv.items:
        stream.add(billing_stream.from_ceilometer(item))
    begin, until = scenario.begin, scenario.horizon
    billed = stream.summary(begin, until)
    truth = truth_summary(scenario, begin, until)
    _print_table(out, billed, truth)
    origins = collections.Counter(e['origin']
                                  for e in stream.events.values())
    kinds = collections.Counter(e['type'][len(billing.TYPE_PREFIX):]
                                for e in stream.events.values())
    print('\nBilling events: %d (%s)' % (len(stream.events), ', '.join(
        '%d %s' % (n, k) for k, n in sorted(kinds.items()))), file=out)
    print('  told by notifications: %d; seen by polling: %d; recovered by '
          'reconciliation: %d' % (origins['notification'],
                                  origins['polling'],
                                  origins['reconciliation']), file=out)
    print('Sink outage: %d deliveries failed with 503 and were retried; '
          'duplicates the receiver dropped: %d; rejected: %d' % (
              outage.failed, rcv.duplicates, len(rcv.rejected)), file=out)
    path = report.write(args.report, scenario, stream, outage)
    print('Timeline of every resource: %s' % path, file=out)
    complete = status.pending == 0 and status.dead_letters == 0 and \
        not rcv.rejected and rcv.duplicates == 0
    print('\n%s' % ('Every billing event arrived once, signed.' if complete
                    else 'INCOMPLETE: see above.'), file=out)
    return 0 if complete else 1


def _print_table(out, billed, truth):
    print('\nResource-hours and usage per project, billed (from the events '
          'received) and true:', file=out)
    header = '  %-10s %-18s %12s %12s %8s' % (
        'project', 'resource', 'billed', 'true', 'diff')
    print(header, file=out)
    for project in sorted(truth):
        real = truth[project]
        got = billed.get(project) or {'resource_hours': {}, 'usage': {}}
        rows = [(rtype, got['resource_hours'].get(rtype, 0.0), hours, 'h')
                for rtype, hours in sorted(real['resource_hours'].items())]
        rows += [(meter, got['usage'].get(meter, 0.0) / 1024 ** 3,
                  value / 1024 ** 3, 'GiB-h')
                 for meter, value in sorted(real['usage'].items())]
        for rtype, got_value, true_value, unit in rows:
            diff = (got_value - true_value) / true_value * 100 \
                if true_value else 0.0
            print('  %-10s %-18s %10.1f %s %10.1f %s %+7.2f%%' % (
                project[:8], rtype[:18], got_value, unit[:1], true_value,
                unit[:1], diff), file=out)
