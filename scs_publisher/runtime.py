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
"""What one process shares among its ``scs://`` publishers.

Ceilometer builds one publisher per pipeline manager (samples and events),
and forks worker processes. Each process gets one :class:`Runtime` per
configuration: one ledger engine, one intake, one fallback journal and, if
``dispatch_in_agent``, one dispatcher. State that must survive lives in the
ledger, never here.
"""

import os
import threading
import time

from oslo_log import log

from scs_publisher import dispatch
from scs_publisher import intake as intake_mod
from scs_publisher import journal as journal_mod
from scs_publisher import ledger as ledger_mod
from scs_publisher import metrics
from scs_publisher import normalize
from scs_publisher import opts
from scs_publisher import reconcile_store
from scs_publisher import resource_definitions
from scs_publisher.sinks import loader

LOG = log.getLogger(__name__)

_RUNTIMES = {}
_RUNTIMES_LOCK = threading.Lock()


class Runtime:
    def __init__(self, conf, start_dispatcher=None):
        opts.register_publisher_opts(conf)
        self.conf = conf
        group = conf[opts.GROUP]
        self.ledger = ledger_mod.Ledger(opts.ledger_url(conf),
                                        group.sqlite_synchronous)
        self.sinks, self.config_errors = loader.load_sinks(conf)
        for error in self.config_errors:
            LOG.error('scs_publisher: sink not started: %s. Its items stay '
                      'in the ledger until the configuration is fixed.',
                      error)
        self.counters = metrics.Counters()
        self.metrics_server = None
        self.reconcile_store = None
        # Reconciling costs about 0.1 ms per item it concerns; only pay it
        # when a sink may want billing events (one that failed to load
        # might).
        if self.config_errors or any(
                sink.content == normalize.CONTENT_BILLING
                for sink in self.sinks):
            self.reconcile_store = self._reconcile_store(conf)
        self.intake = intake_mod.Intake(self.ledger, self.reconcile_store,
                                        self.counters)
        self.journal = journal_mod.Journal(group.state_path)
        self._journal_dirty = None  # unknown until first looked at
        self.dispatcher = None
        if start_dispatcher is None:
            start_dispatcher = group.dispatch_in_agent
        if start_dispatcher:
            self.start_dispatcher()

    def _reconcile_store(self, conf):
        group = conf[opts.GROUP]
        try:
            definitions = resource_definitions.load(
                group.resource_definitions)
        except resource_definitions.DefinitionError as exc:
            error = '[%s] resource_definitions: %s' % (opts.GROUP, exc)
            self.config_errors.append(error)
            LOG.error('scs_publisher: no billing events: %s. Items are '
                      'still accepted, raw sinks still served.', error)
            return None
        return reconcile_store.ReconcileStore(
            self.ledger, definitions, opts.reconcile_settings(conf),
            self.counters)

    def start_dispatcher(self):
        group = self.conf[opts.GROUP]
        self.dispatcher = dispatch.Dispatcher(
            self.ledger, self.sinks, group.source,
            lease_seconds=group.lease_seconds,
            poll_interval=group.poll_interval,
            linger=group.batch_linger,
            housekeeping=self.housekeeping)
        self.dispatcher.start()
        if group.metrics_port:
            self.start_metrics(group.metrics_host, group.metrics_port)
        return self.dispatcher

    def start_metrics(self, host, port):
        """Serve /metrics; with several agent worker processes the first
        gets the port (they all show the same ledger)."""
        try:
            self.metrics_server = metrics.MetricsServer(
                host, port, self.metrics_text).start()
        except OSError as exc:
            LOG.info('Metrics not served by this process on %s:%d (%s)',
                     host, port, exc)
        return self.metrics_server

    def metrics_text(self):
        return metrics.render(metrics.collect(self.ledger, self.sinks))

    def stop(self):
        if self.metrics_server:
            self.metrics_server.stop()
        if self.dispatcher:
            self.dispatcher.stop()
        try:
            self.counters.flush(self.ledger)
        except ledger_mod.LedgerUnavailable:
            pass  # a minute of counts at most; metrics only
        self.ledger.dispose()

    def accept(self, records, quarantined=()):
        """Commit records to the ledger; raises ``LedgerUnavailable``."""
        result = self.intake.accept(records, quarantined)
        if self._journal_dirty is not False:
            self.replay_journal()
        if result.accepted and self.dispatcher:
            self.dispatcher.notify()
        return result

    def accept_or_journal(self, records, quarantined=()):
        """Commit records, or keep them in the fallback journal."""
        try:
            return self.accept(records, quarantined)
        except ledger_mod.LedgerUnavailable as exc:
            self.journal.append(records)
            self._journal_dirty = True
            LOG.warning('Ledger unavailable (%s): %d samples kept in the '
                        'fallback journal %s', exc, len(records),
                        self.journal.path)
            for kind, reason, _excerpt in quarantined:
                LOG.error('Malformed %s dropped while the ledger is '
                          'unavailable: %s', kind, reason)
            return None

    def replay_journal(self):
        try:
            count = self.journal.replay(self.intake)
        except ledger_mod.LedgerUnavailable:
            return 0
        self._journal_dirty = False
        if count and self.dispatcher:
            self.dispatcher.notify()
        return count

    def housekeeping(self):
        self.replay_journal()
        group = self.conf[opts.GROUP]
        now = time.time()
        self.counters.flush(self.ledger)
        if self.reconcile_store is not None:
            if self.reconcile_store.review(now) and self.dispatcher:
                self.dispatcher.notify()
            self.reconcile_store.prune(now, group.state_retention)
        self.ledger.mark(now)
        items = self.ledger.prune(
            now, group.dedup_retention, group.outbox_retention,
            [sink.name for sink in self.sinks])
        if items:
            LOG.debug('Pruned %d outbox items', items)


def get_runtime(conf):
    """The process's :class:`Runtime` for ``conf``; a forked child gets its
    own (database connections and threads do not survive a fork)."""
    key = (id(conf), os.getpid())
    runtime = _RUNTIMES.get(key)
    if runtime is None:
        with _RUNTIMES_LOCK:
            runtime = _RUNTIMES.get(key)
            if runtime is None:
                runtime = _RUNTIMES[key] = Runtime(conf)
    return runtime
