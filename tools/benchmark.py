#!/usr/bin/env python3
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
"""Ingest and drain figures for scs:// against Ceilometer's own publishers.

Ingest: the same N cinder- and nova-style notifications go through
Ceilometer's real event and meter endpoints and pipelines, in batches of
100 (``[notification] batch_size``), publishing to

* ``test://``  - Ceilometer's in-memory publisher: conversion alone;
* ``http://``  - Ceilometer's http publisher, posting to a loopback receiver;
* ``scs://``   - this project, an SQLite ledger and an http sink to the same
  receiver, its dispatcher running in the same process as in the agent;
* ``scs://`` with ``dispatch_in_agent = False`` and ``scs-publisher
  deliver`` running beside it as a process of its own;
* ``scs://`` with a billing sink (``content = billing``): the reconciler
  derives billing events in the intake's transaction, dispatcher in the
  agent.

Each mode runs in a fresh process, the modes alternate, every mode runs
``--rounds`` times and the best round counts (the least disturbed by other
load on the machine). Drain: a backlog of ``--backlog`` items in the ledger
is delivered by the dispatcher to a loopback receiver (another process)
and to a file sink; items per second. Peak memory is each process's
maximum resident set size.

Inventory cycle: ``--resources`` volumes known to the reconciler, then two
complete inventory cycles (one sample per resource, then the completeness
marker) from which 1 % of them are missing; the second cycle ends those.
Timed from the samples as Ceilometer hands them to ``scs://`` (normalized,
deduplicated, reconciled, committed) to the marker's absence pass; the
conversion of polling notifications by Ceilometer is not included.

    python tools/benchmark.py [--notifications 6000] [--rounds 3]
"""

import argparse
import concurrent.futures
import http.server
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

BATCH = 100


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    """Reads each request and answers 200: the cheapest possible sink, so
    the figures measure the sender."""
    protocol_version = 'HTTP/1.1'

    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve(port_queue):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                             _CountingHandler)
    # A measured process that ends drops its connection; not news.
    server.handle_error = lambda request, address: None
    port_queue.put(server.server_address[1])
    server.serve_forever()


def start_receiver():
    """A loopback receiver in another process; returns (url, process)."""
    ports = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_serve, args=(ports,), daemon=True)
    proc.start()
    return 'http://127.0.0.1:%d/' % ports.get(timeout=30), proc


def _conf_file(directory, url, batch_size=100, in_agent=True,
               content='raw'):
    path = os.path.join(directory, 'ceilometer.conf')
    with open(path, 'w') as f:
        f.write('[DEFAULT]\nlog_file = %s\n'
                '[scs_publisher]\nstate_path = %s\nsinks = hook\n'
                'dispatch_in_agent = %s\nreconcile_settle = 0\n'
                '[sink:hook]\nurl = %s\ncontent = %s\nbatch_size = %d\n'
                % (os.path.join(directory, 'log'), directory, in_agent, url,
                   content, batch_size))
    return path


def run_ingest(mode, count, url, threads=1):
    """One ingest round in this process; returns a result dict. With
    ``threads`` > 1, batches are handed to a pool of that many threads, as
    the agent's listener does under load."""
    from scs_publisher import inprocess
    from scs_publisher import simulation
    publisher = {'test': 'test://', 'http': url + '?batch=True',
                 'scs': 'scs://', 'scs-deliver': 'scs://',
                 'scs-billing': 'scs://'}[mode]
    directory = tempfile.mkdtemp(prefix='scs-bench-')
    conf_path = _conf_file(directory, url,
                           in_agent=(mode != 'scs-deliver'),
                           content=('billing' if mode == 'scs-billing'
                                    else 'raw'))
    conf = inprocess.prepare_conf([conf_path], directory, [publisher])
    pipelines = inprocess.Pipelines(conf)
    deliverer = None
    if mode == 'scs-deliver':
        deliverer = subprocess.Popen(
            [sys.executable, '-m', 'scs_publisher.cmd.main', 'deliver',
             '--config-file', conf_path], stderr=subprocess.DEVNULL)
    messages = simulation.notifications(count + BATCH, seed=7)
    pipelines.feed(messages[:BATCH])  # warm up: caches, schema, sockets
    messages = messages[BATCH:]
    batches = [messages[start:start + BATCH]
               for start in range(0, len(messages), BATCH)]
    started = time.perf_counter()
    if threads > 1:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(pipelines.feed, batches))
    else:
        for batch in batches:
            pipelines.feed(batch)
    elapsed = time.perf_counter() - started
    if deliverer:
        deliverer.terminate()
        deliverer.wait()
    shutil.rmtree(directory, ignore_errors=True)
    return {'mode': mode, 'notifications': len(messages),
            'seconds': elapsed, 'rate': len(messages) / elapsed,
            'peak_rss_mib': _peak_rss_mib()}


def run_drain(backlog, url, sink_url, batch_size):
    """Fill the ledger with ``backlog`` items, then time the dispatcher."""
    from oslo_config import cfg

    from scs_publisher import normalize
    from scs_publisher import runtime as runtime_mod
    from scs_publisher import sink_queue
    directory = tempfile.mkdtemp(prefix='scs-drain-')
    if sink_url == 'file':
        sink_url = 'file://' + os.path.join(directory, 'out.jsonl')
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[_conf_file(directory, sink_url,
                                              batch_size)])
    runtime = runtime_mod.Runtime(conf, start_dispatcher=False)
    payload = json.dumps({'name': 'volume.size', 'volume': 10,
                          'resource_metadata': {'x': 'y' * 400}})
    records = [normalize.Record('k%d' % i, 'raw', 'sample', str(i),
                                'volume.size', 'p', payload)
               for i in range(backlog)]
    for start in range(0, backlog, 5000):
        runtime.intake.accept(records[start:start + 5000])
    sink = runtime.sinks[0]
    queue = sink_queue.SinkQueue(runtime.ledger, sink.name, sink.content)
    started = time.perf_counter()
    runtime.start_dispatcher()
    while queue.status().pending:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    delivered = queue.status().delivered
    runtime.stop()
    shutil.rmtree(directory, ignore_errors=True)
    return {'sink': sink_url.split(':')[0], 'items': delivered,
            'batch_size': batch_size, 'seconds': elapsed,
            'rate': delivered / elapsed, 'peak_rss_mib': _peak_rss_mib()}


def run_cycle(resources, missing=0.01):
    """Two complete inventory cycles over ``resources`` known volumes."""
    import datetime

    from ceilometer.event import models
    from ceilometer import sample as sample_mod
    from oslo_config import cfg

    from scs_publisher import normalize
    from scs_publisher import observations
    from scs_publisher import runtime as runtime_mod
    directory = tempfile.mkdtemp(prefix='scs-cycle-')
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[_conf_file(
        directory, 'file://' + os.path.join(directory, 'out.jsonl'),
        content='billing')])
    runtime = runtime_mod.Runtime(conf, start_dispatcher=False)
    created = datetime.datetime(2026, 12, 1, 8, 0, 0)
    ids = ['vol-%08d' % n for n in range(resources)]
    records = [normalize.event_record(models.Event(
        'create-%s' % rid, 'volume.create.end', created, [
            models.Trait('resource_id', 1, rid),
            models.Trait('project_id', 1, 'p%d' % (n % 50)),
            models.Trait('size', 2, 10), models.Trait('type', 1, 'ssd')],
        {})) for n, rid in enumerate(ids)]
    for start in range(0, len(records), 2000):
        runtime.intake.accept(records[start:start + 2000])
    listed = ids[:int(resources * (1 - missing))]
    figures = {}
    for cycle in (1, 2):
        at = created + datetime.timedelta(hours=cycle)
        cycle_id = 'volume-cycle-%d' % cycle
        started = time.perf_counter()
        samples = [sample_mod.Sample(
            name='scs.inventory.volume', type='gauge', unit='resource',
            volume=10, user_id='u', project_id='p', resource_id=rid,
            timestamp=at.isoformat(), resource_metadata={
                'volume_type': 'ssd', observations.CYCLE_KEY: cycle_id})
            for rid in listed]
        # As the agent hands them over: one polling notification (50
        # samples) per call, many calls per group commit.
        for start in range(0, len(samples), 1000):
            chunk = samples[start:start + 1000]
            runtime.intake.accept([normalize.sample_record(s)
                                   for s in chunk])
        sampled = time.perf_counter()
        marker = sample_mod.Sample(
            name=observations.CYCLE_METER, type='gauge', unit='resource',
            volume=len(listed), user_id=None, project_id=None,
            resource_id=cycle_id, timestamp=at.isoformat(),
            resource_metadata={'resource_type': 'volume',
                               'listed': len(listed),
                               'started_at': at.isoformat()})
        result = runtime.intake.accept([normalize.sample_record(marker)])
        done = time.perf_counter()
        figures[cycle] = (sampled - started, done - sampled,
                          result.billing_events)
    runtime.stop()
    shutil.rmtree(directory, ignore_errors=True)
    samples_s, absence_s, ended = figures[2]
    return {'resources': resources, 'listed': len(listed),
            'samples_seconds': samples_s, 'absence_seconds': absence_s,
            'seconds': samples_s + absence_s, 'ended': ended,
            'peak_rss_mib': _peak_rss_mib()}


def _child(args):
    """Run one measurement in a fresh interpreter; returns its dict."""
    cmd = [sys.executable, os.path.abspath(__file__), '--child'] + args
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--notifications', type=int, default=6000)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--backlog', type=int, default=100000)
    parser.add_argument('--batch-size', type=int, default=100)
    parser.add_argument('--threads', type=int, default=8)
    parser.add_argument('--resources', type=int, default=100000)
    parser.add_argument('--child', nargs='+', help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind = args.child[0]
        if kind == 'ingest':
            result = run_ingest(args.child[1], int(args.child[2]),
                                args.child[3], int(args.child[4]))
        elif kind == 'cycle':
            result = run_cycle(int(args.child[1]))
        else:
            result = run_drain(int(args.child[1]), args.child[2],
                               args.child[3], int(args.child[4]))
        print(json.dumps(result))
        return 0

    url, receiver = start_receiver()
    best = {}
    print('Ingest: %d notifications, batches of %d, %d rounds per mode '
          '(best round shown)' % (args.notifications, BATCH, args.rounds))
    modes = ('test', 'http', 'scs', 'scs-deliver', 'scs-billing')
    labels = {'test': 'test://', 'http': 'http://',
              'scs': 'scs:// (dispatcher in the agent)',
              'scs-deliver': 'scs:// (scs-publisher deliver beside it)',
              'scs-billing': 'scs:// billing sink (reconciler)'}
    for round_no in range(args.rounds):
        for mode in modes:
            result = _child(['ingest', mode, str(args.notifications), url,
                             '1'])
            if mode not in best or result['rate'] > best[mode]['rate']:
                best[mode] = result
    for mode in modes:
        r = best[mode]
        print('  %-40s %6.0f notifications/s  %4.2fx test://  %4.2fx '
              'http://  peak RSS %4.0f MiB' % (
                  labels[mode], r['rate'], r['rate'] / best['test']['rate'],
                  r['rate'] / best['http']['rate'], r['peak_rss_mib']))

    print('Ingest with batches handed to %d threads, as the agent does '
          'under load (best of %d):' % (args.threads, args.rounds))
    threaded = {}
    for round_no in range(args.rounds):
        for mode in ('test', 'scs'):
            result = _child(['ingest', mode, str(args.notifications), url,
                             str(args.threads)])
            if mode not in threaded or \
                    result['rate'] > threaded[mode]['rate']:
                threaded[mode] = result
    for mode in ('test', 'scs'):
        r = threaded[mode]
        print('  %-40s %6.0f notifications/s  %4.2fx test://' % (
            labels[mode], r['rate'], r['rate'] / threaded['test']['rate']))

    print('Drain: a backlog of %d items, batch_size %d'
          % (args.backlog, args.batch_size))
    for sink in (url, 'file'):
        r = _child(['drain', str(args.backlog), url, sink,
                    str(args.batch_size)])
        print('  %-5s sink %8.0f items/s  (%d items in %.1f s)   peak RSS '
              '%4.0f MiB' % (r['sink'], r['rate'], r['items'], r['seconds'],
                             r['peak_rss_mib']))
    r = _child(['cycle', str(args.resources)])
    print('Inventory cycle: %d known volumes, %d listed, %d ended' % (
        r['resources'], r['listed'], r['ended']))
    print('  %.1f s in all: samples %.1f s (%.0f/s), absence pass %.2f s   '
          'peak RSS %4.0f MiB' % (
              r['seconds'], r['samples_seconds'],
              r['listed'] / r['samples_seconds'], r['absence_seconds'],
              r['peak_rss_mib']))
    receiver.terminate()
    return 0


if __name__ == '__main__':
    sys.exit(main())
