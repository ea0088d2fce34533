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
"""Billing events from a simulated cloud with a known ground truth, through
Ceilometer's real pipelines, ``scs://`` and a real loopback receiver.

The scenario (``scs_publisher.scenario``) stands in for nova, cinder,
glance, neutron and the polling agent: it produces their notifications
in the shapes they send, including the inventory pollsters' listings.
"""

import collections
import datetime
import multiprocessing
import os
import time

from scs_publisher import billing
from scs_publisher import billing_stream
from scs_publisher import runtime as runtime_mod
from scs_publisher import scenario as scenario_mod
from scs_publisher import sink_queue
from scs_publisher.tests import base
from scs_publisher.tests.functional import test_pipelines

SETTLE = 1.0
# Days before the clock's now: every usage window has closed by then.
PAST = datetime.datetime(2026, 11, 1)
SCENARIO = dict(seed=11, resources=400, days=3, start=PAST)


class ScenarioChecks(test_pipelines.PipelineTestCase):
    """Running a scenario and checking what was billed against it."""

    def run_scenario(self, sc, sink_format='ceilometer'):
        rcv = self.start_receiver()
        conf, pipes = self.pipelines(
            '[scs_publisher]\nstate_path = %s\nsinks = billing\n'
            'reconcile_settle = %s\n'
            '[sink:billing]\nurl = %s\nformat = %s\nbatch_size = 500\n'
            % (self.tmp, SETTLE, rcv.url, sink_format))
        for batch in sc.deliveries:
            pipes.feed(batch)
        runtime = runtime_mod.get_runtime(conf)
        return self.received(runtime, rcv, sink_format), runtime

    def received(self, runtime, rcv, sink_format='ceilometer'):
        """Everything the billing sink got, once settled and delivered."""
        # Facts held back for settle come due; so do usage windows.
        runtime.reconcile_store.review(time.time() + SETTLE + 1)
        runtime.dispatcher.notify()
        queue = sink_queue.SinkQueue(runtime.ledger, 'billing', 'billing')
        base.wait_until(lambda: queue.status().pending == 0, 120,
                        message='the billing sink to catch up')
        convert = (billing_stream.from_ceilometer if sink_format ==
                   'ceilometer' else billing_stream.from_cloudevent)
        stream = billing_stream.BillingStream()
        for item in rcv.items:
            self.assertTrue(stream.add(convert(item)))
        self.assertEqual(0, rcv.duplicates)
        return stream

    def check_truth(self, sc, stream):
        intervals = stream.intervals()
        poll = sc.poll_interval
        checked = collections.Counter()
        for rid, truth in sc.truth.items():
            billed = intervals.get((truth.resource_type, rid), [])
            expected = self.expected_intervals(truth)
            self.assertEqual(len(expected), len(billed),
                             '%s %s: %s' % (truth.resource_type, rid,
                                            billed))
            for (start, end, attrs, start_fact, end_fact), interval in zip(
                    expected, billed):
                where = '%s %s' % (truth.resource_type, rid)
                self.assertTime(start, interval.start, start_fact, sc,
                                truth, poll, after=True, where=where)
                if end is None:
                    self.assertIsNone(interval.end, where)
                else:
                    self.assertIsNotNone(interval.end, '%s ends at %s (%s)'
                                         % (where, end, end_fact))
                    # A segment ends with a change (found late, if only
                    # polling saw it) or with the end (found early: at the
                    # last sighting).
                    self.assertTime(end, interval.end, end_fact, sc, truth,
                                    poll, after=end_fact != 'end',
                                    where=where)
                self.assertEqual(attrs, {k: interval.attributes.get(k)
                                         for k in attrs}, where)
            checked[truth.resource_type] += 1
        self.assertEqual(set(scenario_mod.TYPES), set(checked))
        # No fact twice under different ids: one start per resource.
        starts = collections.Counter(
            f['resource_id'] for kind, f in stream.facts()
            if kind == billing.STARTED)
        self.assertEqual({1}, set(starts.values()))
        self.check_usage(sc, stream)
        origins = collections.Counter(e['origin']
                                      for e in stream.events.values())
        self.assertGreater(origins['reconciliation'], 0)
        self.assertGreater(origins['notification'], 0)

    def expected_intervals(self, truth):
        out = []
        segments = truth.segments
        for index, (at, attrs) in enumerate(segments):
            end = segments[index + 1][0] if index + 1 < len(segments) \
                else truth.end
            start_fact = 'start' if index == 0 else ('change', at)
            end_fact = ('change', end) if index + 1 < len(segments) \
                else 'end'
            out.append((at, end, attrs, start_fact, end_fact))
        return out

    def assertTime(self, truth_at, billed_at, fact, sc, truth, poll, after,
                   where):
        told = (truth.resource_id, fact) not in sc.lost and not (
            truth.resource_type == 'volume_backup' and fact == 'end')
        if told:
            # What a notification told (or, for a backup, the sample made
            # from it) is billed exactly.
            self.assertEqual(truth_at, billed_at, '%s %s' % (where, fact))
        elif after:
            # Found by polling: at most one interval late.
            self.assertTrue(truth_at <= billed_at <= truth_at + poll,
                            '%s %s: %s vs %s' % (where, fact, billed_at,
                                                 truth_at))
        else:
            # Ended at the last sighting: at most one interval early.
            self.assertTrue(truth_at - poll <= billed_at <= truth_at,
                            '%s %s: %s vs %s' % (where, fact, billed_at,
                                                 truth_at))

    def check_usage(self, sc, stream):
        usage = stream.usage()
        for project, polled in sc.storage.items():
            found = 0
            for at, value in polled:
                window_start = at - at % 3600
                fields = usage.get((project, 'storage.objects.size',
                                    window_start))
                if fields is None:
                    continue
                found += 1
                self.assertEqual(value, fields['quantity'])
                self.assertEqual('B', fields['unit'])
                self.assertEqual(1, fields['sample_count'])
            self.assertEqual(len(polled), found)


class ScenarioTest(ScenarioChecks):

    def test_billed_intervals_match_the_ground_truth(self):
        sc = scenario_mod.Scenario(**SCENARIO).build()
        lost = collections.Counter(
            fact if isinstance(fact, str) else fact[0]
            for _rid, fact in sc.lost)
        # Lost creates, resizes and deletes: reconciliation has work.
        self.assertGreater(min(lost['start'], lost['change'], lost['end']),
                           2, lost)
        stream, runtime = self.run_scenario(sc)
        self.assertEqual(0, runtime.ledger.quarantined())
        self.check_truth(sc, stream)

    def test_cloudevents_format_carries_the_same_facts(self):
        sc = scenario_mod.Scenario(seed=12, resources=30, days=1).build()
        stream, _runtime = self.run_scenario(sc, 'cloudevents')
        intervals = stream.intervals()
        self.assertEqual(len(sc.truth), len(intervals))


class TwoAgentsTest(base.BackendMixin, ScenarioChecks):
    """Two processes, each running the real pipelines with ``scs://`` on
    the same ledger, take the scenario's notification batches in turn, at
    the same time, as two notification agents on one RabbitMQ queue do.
    A third process delivers. The billed intervals must still match the
    ground truth, with no fact twice."""

    backend = 'postgresql'
    shares = 2

    def test_billed_intervals_match_the_ground_truth(self):
        ledger_url = self.ledger_url()
        rcv = self.start_receiver()
        sinks = ('sinks = billing\nreconcile_settle = %s\n'
                 'connection = %s\n[sink:billing]\nurl = %s\n'
                 'batch_size = 500\n' % (SETTLE, ledger_url, rcv.url))
        agent_conf = self.write_conf(
            '[DEFAULT]\nlog_file = %s\n[scs_publisher]\nstate_path = %s\n'
            'dispatch_in_agent = False\n%s'
            % (os.path.join(self.tmp, 'agents.log'), self.tmp, sinks),
            'agents.conf')
        spawn = multiprocessing.get_context('spawn')
        agents = [spawn.Process(target=scenario_mod.feed_share, args=(
            agent_conf, os.path.join(self.tmp, 'agent-%d' % n), SCENARIO,
            n, self.shares)) for n in range(self.shares)]
        for agent in agents:
            agent.start()
        for agent in agents:
            agent.join(300)
            self.assertEqual(0, agent.exitcode)
        conf, _pipes = self.pipelines(
            '[scs_publisher]\nstate_path = %s\n%s' % (self.tmp, sinks))
        runtime = runtime_mod.get_runtime(conf)
        stream = self.received(runtime, rcv)
        self.assertEqual(0, runtime.ledger.quarantined())
        self.check_truth(scenario_mod.Scenario(**SCENARIO).build(), stream)


class TwoAgentsSQLiteTest(TwoAgentsTest):
    backend = 'sqlite'


class TwoAgentsMySQLTest(TwoAgentsTest):
    backend = 'mysql'
