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
"""The dispatcher: drains the outbox to every sink.

One thread per sink, so a slow or dead sink delays nobody else. A worker
holds its sink's lease in the ledger while it delivers; other processes
(more agent workers, ``scs-publisher deliver``) wait for the lease, so in
the normal case every batch is sent once. Delivery is at-least-once: a
crash between a sink's answer and the commit that records it sends that
batch again, under the same delivery id.
"""

import random
import threading
import time
import uuid

from oslo_log import log

from scs_publisher import ledger as ledger_mod
from scs_publisher import sink_queue
from scs_publisher import sinks

LOG = log.getLogger(__name__)

# Namespace of delivery ids (webhook-id): uuid5 over sink and items.
DELIVERY_NAMESPACE = uuid.UUID('8f7a4f8e-1f51-5b1e-9a55-5c5d6f0a0b27')
JITTER = 0.2
# How long a worker waits after the ledger failed before it looks again.
LEDGER_RETRY_SECONDS = 5.0


def delivery_id(source, sink_name, batch_source, items):
    """Stable for the same items to the same sink: retries, and a
    takeover after a crash, send the same id."""
    first, last = items[0].id, items[-1].id
    return str(uuid.uuid5(DELIVERY_NAMESPACE, '%s|%s|%s|%d|%d|%d' % (
        source, sink_name, batch_source, first, last, len(items))))


def backoff(schedule, attempts, retry_after=None, rand=random.random):
    """Seconds before retry number ``attempts`` (1-based)."""
    if retry_after is not None:
        return retry_after
    step = schedule[min(attempts, len(schedule)) - 1]
    return step * (1 - JITTER + 2 * JITTER * rand())


class SinkWorker(threading.Thread):
    def __init__(self, ledger, sink, owner, source, lease_seconds,
                 poll_interval, stopping, linger=0.0):
        super().__init__(name='scs-sink-%s' % sink.name, daemon=True)
        self.sink = sink
        self.queue = sink_queue.SinkQueue(ledger, sink.name, sink.content)
        self.owner = owner
        self.source = source
        self.lease_seconds = max(lease_seconds, 2 * sink.driver.timeout + 5)
        self.poll_interval = poll_interval
        self.linger = linger
        self.stopping = stopping
        self.wakeup = threading.Event()

    def notify(self):
        self.wakeup.set()

    def _pause(self, seconds, until_new_items):
        """Wait ``seconds``; with ``until_new_items``, new items in this
        process end the wait early (after a short linger, so that items
        arriving one notification at a time gather into one delivery)."""
        if not until_new_items:
            self.stopping.wait(seconds)
            return
        woken = self.wakeup.wait(max(0.0, seconds))
        self.wakeup.clear()
        if woken and self.linger:
            self.stopping.wait(self.linger)

    def run(self):
        while not self.stopping.is_set():
            try:
                delay, until_new_items = self.step()
            except ledger_mod.LedgerUnavailable as exc:
                LOG.warning('Sink %s: ledger unavailable (%s); retrying in '
                            '%.0f s', self.sink.name, exc,
                            LEDGER_RETRY_SECONDS)
                delay, until_new_items = LEDGER_RETRY_SECONDS, False
            except sink_queue.LeaseLost:
                LOG.warning('Sink %s: lease lost to another process',
                            self.sink.name)
                delay, until_new_items = self.poll_interval, False
            except Exception:
                LOG.exception('Sink %s: unexpected error', self.sink.name)
                delay, until_new_items = LEDGER_RETRY_SECONDS, False
            if delay:
                self._pause(delay, until_new_items)
        try:
            self.queue.release(self.owner)
        except ledger_mod.LedgerUnavailable:
            pass  # the lease expires by itself
        self.sink.driver.close()

    def step(self):
        """Deliver at most one batch. Returns how long to pause before the
        next step, and whether new items may end the pause."""
        try:
            batch = self.queue.head(self.owner, self.sink.batch_size,
                                    self.lease_seconds)
        except sink_queue.LeaseHeld:
            return min(self.lease_seconds / 4, 5.0), False
        if batch is None:
            return self.poll_interval, True
        now = time.time()
        if batch.next_attempt_at and batch.next_attempt_at > now:
            return min(batch.next_attempt_at - now,
                       self.lease_seconds / 4), False
        wanted = [item for item in batch.items if self.sink.wants(item)]
        if not wanted:
            self.queue.complete(self.owner, batch, 0)
            return 0, False
        self._deliver(batch, wanted)
        if len(batch.items) < self.sink.batch_size:
            # Caught up: let the next items gather before the next batch.
            return self.linger, False
        return 0, False

    def _deliver(self, batch, items):
        fmt = self.sink.format
        rendered = [fmt.render(item) for item in items]
        delivery = sinks.Delivery(
            id=delivery_id(self.source, self.sink.name, batch.source, items),
            rendered=rendered, body=fmt.body(rendered),
            content_type=fmt.content_type, items=items)
        try:
            self.sink.driver.send(delivery)
        except sinks.PermanentError as exc:
            self._refused(batch, items, exc)
        except sinks.RetryableError as exc:
            self._failed(batch, items, exc, exc.retry_after)
        except Exception as exc:
            # A driver bug must not lose data: retry like a failure.
            LOG.exception('Sink %s: driver error', self.sink.name)
            self._failed(batch, items, exc, None)
        else:
            self.queue.complete(self.owner, batch, len(items))
            if batch.attempts:
                LOG.info('Sink %s: delivered after %d failed attempts',
                         self.sink.name, batch.attempts)

    def _refused(self, batch, items, exc):
        if len(items) > 1:
            # Split to find the item the sink refuses; the others go on.
            half = items[len(items) // 2 - 1].id
            LOG.warning('Sink %s refused a batch of %d (%s); splitting it',
                        self.sink.name, len(items), exc)
            self.queue.shrink(self.owner, batch, half)
            return
        LOG.error('Sink %s refused %s %s (%s); dead-lettered',
                  self.sink.name, items[0].kind, items[0].item_id, exc)
        self.queue.dead_letter(self.owner, batch, items, str(exc),
                               exc.status_code, exc.response)

    def _failed(self, batch, items, exc, retry_after):
        attempts = batch.attempts + 1
        now = time.time()
        if now - batch.waiting_since >= self.sink.max_retry_age:
            LOG.error('Sink %s: giving up on %d items after %d attempts '
                      '(%s); dead-lettered', self.sink.name, len(items),
                      attempts, exc)
            self.queue.dead_letter(
                self.owner, batch, items, 'gave up after %d attempts: %s'
                % (attempts, exc), getattr(exc, 'status_code', None),
                getattr(exc, 'response', None))
            return
        delay = backoff(self.sink.retry_schedule, attempts, retry_after)
        LOG.warning('Sink %s: delivery of %d items failed (%s); attempt %d, '
                    'next in %.0f s', self.sink.name, len(items), exc,
                    attempts, delay)
        self.queue.fail(self.owner, batch, str(exc), now + delay)


class Dispatcher:
    """Runs a :class:`SinkWorker` per sink, plus housekeeping (pruning and
    replay of the fallback journal)."""

    HOUSEKEEPING_SECONDS = 60.0

    def __init__(self, ledger, sinks_, source, lease_seconds=60,
                 poll_interval=0.2, linger=0.0, housekeeping=None):
        self.ledger = ledger
        self.sinks = sinks_
        self.stopping = threading.Event()
        self.owner = sink_queue.lease_owner()
        self.workers = [
            SinkWorker(ledger, sink, self.owner, source, lease_seconds,
                       poll_interval, self.stopping, linger)
            for sink in sinks_]
        self._housekeeping = housekeeping
        self._housekeeper = None

    def start(self):
        for worker in self.workers:
            worker.start()
        if self._housekeeping:
            self._housekeeper = threading.Thread(
                target=self._housekeep, name='scs-housekeeping', daemon=True)
            self._housekeeper.start()

    def notify(self):
        """New items are in the outbox."""
        for worker in self.workers:
            worker.notify()

    def stop(self, timeout=None):
        self.stopping.set()
        self.notify()
        for worker in self.workers:
            worker.join(timeout)
        if self._housekeeper:
            self._housekeeper.join(timeout)

    def _housekeep(self):
        while True:
            try:
                self._housekeeping()
            except ledger_mod.LedgerUnavailable as exc:
                LOG.warning('Housekeeping: ledger unavailable (%s)', exc)
            except Exception:
                LOG.exception('Housekeeping failed; trying again later')
            if self.stopping.wait(self.HOUSEKEEPING_SECONDS):
                return
