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
"""``scs-publisher demo``: the whole path on one machine, no services.

Cinder- and nova-style notifications go through Ceilometer's real event
and meter pipelines into ``scs://`` (an SQLite ledger in a temporary
directory) and on to the reference receiver on a loopback port, which
answers 503 to the first deliveries. Some notifications are delivered
twice, as RabbitMQ does after an agent restart. At the end the receiver
must hold every event and sample exactly once.
"""

import contextlib
import io
import sys
import tempfile
import threading
import time

from scs_publisher import inprocess
from scs_publisher import receiver as receiver_mod
from scs_publisher import runtime as runtime_mod
from scs_publisher import simulation
from scs_publisher import sink_queue

SECRET = 'whsec_ZGVtby1zZWNyZXQtZm9yLXNjcy1wdWJsaXNoZXI='
BATCH = 100


class _Outage:
    """Answers 503 to the first ``count`` deliveries."""

    def __init__(self, count):
        self.left = count
        self.failed = 0
        self._lock = threading.Lock()

    def __call__(self, headers, body):
        with self._lock:
            if self.left > 0:
                self.left -= 1
                self.failed += 1
                return 503, {'Retry-After': '1'}
        return None


def run(args, out=sys.stdout):
    outage = _Outage(args.outage)
    rcv = receiver_mod.Receiver(secrets=[SECRET], responder=outage).start()
    with tempfile.TemporaryDirectory(prefix='scs-demo-') as directory:
        conf_path = inprocess.write_conf(directory, 'billing', {
            'url': rcv.url, 'content': 'raw', 'secret': SECRET,
            'retry_schedule': 1})
        conf = inprocess.prepare_conf([conf_path], directory, ['scs://'])
        # A JSONPath library prints while Ceilometer loads its meter
        # definitions; keep the demo's output to what it shows.
        with contextlib.redirect_stdout(io.StringIO()):
            pipelines = inprocess.Pipelines(conf)
        runtime = runtime_mod.get_runtime(conf)
        sink = runtime.sinks[0]
        queue = sink_queue.SinkQueue(runtime.ledger, sink.name, sink.content)
        messages = simulation.notifications(args.notifications,
                                            seed=args.seed)
        print('Feeding %d nova and cinder notifications through '
              'Ceilometer\'s pipelines into scs:// ...' % len(messages),
              file=out)
        started = time.monotonic()
        redelivered = 0
        for start in range(0, len(messages), BATCH):
            batch = messages[start:start + BATCH]
            pipelines.feed(batch)
            if (start // BATCH) % 3 == 1:
                # RabbitMQ redelivers a batch whose ack was lost.
                pipelines.feed(batch)
                redelivered += len(batch)
            print('  %d/%d notifications published; %d items waiting in '
                  'the ledger, %d delivered' % (
                      min(start + BATCH, len(messages)), len(messages),
                      queue.status().pending, len(rcv.items)), file=out)
        fed = time.monotonic() - started
        deadline = time.monotonic() + 120
        while queue.status().pending and time.monotonic() < deadline:
            time.sleep(0.1)
        status = queue.status()
        runtime.stop()
    rcv.stop()
    events = sum(1 for i in rcv.items if 'message_id' in i)
    samples = len(rcv.items) - events
    print('\nPublished in %.2f s (%d notifications/s).' % (
        fed, len(messages) / fed if fed else 0), file=out)
    print('Redelivered notifications (duplicates):   %d' % redelivered,
          file=out)
    print('Deliveries the sink failed with 503:      %d' % outage.failed,
          file=out)
    print('Items the receiver accepted:              %d (%d events, %d '
          'samples)' % (len(rcv.items), events, samples), file=out)
    print('Duplicates the receiver had to drop:      %d' % rcv.duplicates,
          file=out)
    print('Still pending / dead letters:             %d / %d' % (
        status.pending, status.dead_letters), file=out)
    complete = status.pending == 0 and status.dead_letters == 0 and \
        not rcv.rejected
    print('\n%s' % ('Every event and sample arrived once, signed.' if complete
                    else 'INCOMPLETE: see above.'), file=out)
    return 0 if complete else 1
