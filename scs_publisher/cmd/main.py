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
"""``scs-publisher``: operate the ledger and its sinks.

Exit codes: 0 success, 1 the ledger or a sink could not be reached,
2 the configuration or the command line is wrong.
"""

import argparse
import datetime
import json
import os
import signal
import sys
import threading
import time
import warnings

from oslo_config import cfg
from oslo_log import log
from oslo_utils import timeutils

from scs_publisher import billing
from scs_publisher import billing_stream
from scs_publisher import ledger as ledger_mod
from scs_publisher import metrics
from scs_publisher import opts
from scs_publisher import receiver as receiver_mod
from scs_publisher import reconcile_store
from scs_publisher import resource_definitions
from scs_publisher import runtime as runtime_mod
from scs_publisher import sink_queue
from scs_publisher.sinks import loader
from scs_publisher import version

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
EXIT_CONFIG = 2

DEFAULT_CONFIG_FILE = '/etc/ceilometer/ceilometer.conf'

# Read only to warn about it; Ceilometer owns this option.
_ACK_ON_EVENT_ERROR = cfg.BoolOpt('ack_on_event_error', default=True)


class CommandError(Exception):
    def __init__(self, message, code=EXIT_CONFIG):
        super().__init__(message)
        self.code = code


def load_conf(args):
    conf = cfg.ConfigOpts()
    log.register_options(conf)
    opts.register_publisher_opts(conf)
    conf.register_opt(_ACK_ON_EVENT_ERROR, group='notification')
    files = args.config_file
    if not files and os.path.exists(DEFAULT_CONFIG_FILE):
        files = [DEFAULT_CONFIG_FILE]
    try:
        conf([], project='ceilometer', default_config_files=files or [],
             default_config_dirs=args.config_dir or [])
    except cfg.Error as exc:
        raise CommandError('configuration: %s' % exc)
    log.set_defaults(default_log_levels=log.get_default_log_levels())
    log.setup(conf, 'scs-publisher')
    return conf


def _sinks_or_fail(conf):
    sinks, errors = loader.load_sinks(conf)
    if errors:
        raise CommandError('\n'.join(errors))
    return sinks


def _named_sink(conf, name):
    sinks = _sinks_or_fail(conf)
    for sink in sinks:
        if sink.name == name:
            return sink
    raise CommandError('no sink "%s" in [%s] sinks (configured: %s)' % (
        name, opts.GROUP, ', '.join(s.name for s in sinks) or 'none'))


def _ledger(conf):
    return ledger_mod.Ledger(opts.ledger_url(conf),
                             conf[opts.GROUP].sqlite_synchronous)


def _age(seconds):
    if seconds is None:
        return '-'
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return '%dd%02dh' % (days, hours)
    if hours:
        return '%dh%02dm' % (hours, minutes)
    if minutes:
        return '%dm%02ds' % (minutes, secs)
    return '%ds' % secs


def _when(epoch):
    if epoch is None:
        return '-'
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def cmd_status(args):
    conf = load_conf(args)
    sinks = _sinks_or_fail(conf)
    ledger = _ledger(conf)
    if args.format == 'prometheus':
        print(metrics.render(metrics.collect(ledger, sinks)), end='')
        return EXIT_OK
    rows = []
    for sink in sinks:
        status = sink_queue.SinkQueue(ledger, sink.name, sink.content)\
            .status()
        rows.append((sink, status))
    quarantined = ledger.quarantined()
    billing_state = reconcile_store.status(ledger)
    if args.format == 'json':
        print(json.dumps({'sinks': [dict(
            sink=sink.name, url=sink.driver.describe(), content=sink.content,
            pending=s.pending, oldest_pending_age=s.oldest_pending_age,
            delivered=s.delivered, failed_attempts=s.attempts,
            next_attempt_at=s.next_attempt_at, last_error=s.last_error,
            dead_letters=s.dead_letters, lease_owner=s.lease_owner)
            for sink, s in rows], 'quarantined': quarantined,
            'reconciler': billing_state}, indent=2))
        return EXIT_OK
    header = ('SINK', 'CONTENT', 'PENDING', 'OLDEST', 'DELIVERED',
              'RETRYING', 'DEAD', 'URL')
    table = [header]
    for sink, s in rows:
        retrying = '-'
        if s.attempts:
            retrying = 'attempt %d, next %s' % (s.attempts,
                                                _when(s.next_attempt_at))
        table.append((sink.name, sink.content, str(s.pending),
                      _age(s.oldest_pending_age), str(s.delivered),
                      retrying, str(s.dead_letters), sink.driver.describe()))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print('  '.join(cell.ljust(w) for cell, w in zip(row, widths))
              .rstrip())
    for sink, s in rows:
        if s.last_error:
            print('%s: last error: %s' % (sink.name, s.last_error))
    print('Quarantined inputs (malformed, not delivered): %d' % quarantined)
    print('Billable resources: %(resources)d known, %(active)d active; '
          '%(settling)d with facts settling; %(open_usage_windows)d usage '
          'windows open' % billing_state)
    return EXIT_OK


def cmd_check_config(args):
    conf = load_conf(args)
    sinks, errors = loader.load_sinks(conf)
    for error in errors:
        print('ERROR: %s' % error)
    if not conf[opts.GROUP].sinks:
        print('WARNING: [%s] sinks is empty: items are kept in the ledger '
              'and delivered nowhere' % opts.GROUP)
    for sink in sinks:
        print('sink %s: %s, content=%s, format=%s' % (
            sink.name, sink.driver.describe(), sink.content,
            conf[opts.sink_group(sink.name)].format))
    try:
        definitions = resource_definitions.load(
            conf[opts.GROUP].resource_definitions)
        print('resource definitions %s: %d types' % (
            definitions.source, len(definitions.types)))
    except resource_definitions.DefinitionError as exc:
        errors.append(str(exc))
        print('ERROR: %s' % exc)
    if conf.notification.ack_on_event_error:
        print('WARNING: [notification] ack_on_event_error is True: an event '
              'the ledger cannot take is acknowledged and lost. Set it to '
              'False so RabbitMQ redelivers it.')
    ledger = _ledger(conf)
    shown = ledger.url.render_as_string(hide_password=True)
    try:
        with ledger.begin():
            pass
    except ledger_mod.LedgerUnavailable as exc:
        print('ERROR: ledger %s: %s' % (shown, exc))
        return EXIT_UNAVAILABLE if not errors else EXIT_CONFIG
    print('ledger %s: ok' % shown)
    return EXIT_CONFIG if errors else EXIT_OK


def cmd_deliver(args):
    conf = load_conf(args)
    _sinks_or_fail(conf)
    runtime = runtime_mod.Runtime(conf, start_dispatcher=True)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    print('Delivering to %s; stop with SIGTERM or Ctrl-C' % ', '.join(
        s.name for s in runtime.sinks), file=sys.stderr)
    if args.until_idle:
        _wait_idle(runtime, done, args.until_idle)
    else:
        done.wait()
    runtime.stop()
    return EXIT_OK


def _wait_idle(runtime, done, timeout):
    deadline = time.monotonic() + timeout
    while not done.wait(0.2):
        pending = sum(
            sink_queue.SinkQueue(runtime.ledger, s.name, s.content)
            .status().pending for s in runtime.sinks)
        if pending == 0:
            return
        if time.monotonic() > deadline:
            raise CommandError('%d items still pending after %d s'
                               % (pending, timeout), EXIT_UNAVAILABLE)


def cmd_dead_letters(args):
    conf = load_conf(args)
    sinks = ([_named_sink(conf, args.sink)] if args.sink
             else _sinks_or_fail(conf))
    ledger = _ledger(conf)
    for sink in sinks:
        rows = sink_queue.SinkQueue(ledger, sink.name, sink.content)\
            .dead_letter_list(args.limit)
        for row in rows:
            if args.format == 'json':
                print(json.dumps({
                    'sink': sink.name, 'outbox_id': row.outbox_id,
                    'kind': row.kind, 'item_id': row.item_id,
                    'event_type': row.event_type, 'reason': row.reason,
                    'status_code': row.status_code,
                    'response': row.response, 'attempts': row.attempts,
                    'dead_at': _when(row.dead_at)}))
            else:
                print('%s #%d %s %s %s at %s after %d attempts: %s' % (
                    sink.name, row.outbox_id, row.kind, row.item_id,
                    row.event_type, _when(row.dead_at), row.attempts,
                    row.reason))
    return EXIT_OK


def _parse_time(text):
    try:
        when = timeutils.parse_isotime(text)
    except ValueError as exc:
        raise CommandError('not an ISO 8601 time: %s (%s)' % (text, exc))
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def cmd_replay(args):
    conf = load_conf(args)
    sink = _named_sink(conf, args.sink)
    queue = sink_queue.SinkQueue(_ledger(conf), sink.name, sink.content)
    if args.since or args.until:
        if not (args.since and args.until):
            raise CommandError('--since and --until go together')
        count = queue.replay_range(_parse_time(args.since),
                                   _parse_time(args.until))
        what = 'items accepted in that range'
    else:
        count = queue.replay_dead_letters(args.id or None)
        what = 'dead letters'
    print('%d %s queued for %s' % (count, what, sink.name))
    return EXIT_OK


def _print_summary(items, args):
    stream = billing_stream.BillingStream()
    for item in items:
        event = billing_stream.from_wire(item)
        if event is not None:
            stream.add(event)
    span = stream.span()
    begin = billing.parse_time(args.period_start) if args.period_start \
        else (span[0] if span else 0)
    until = billing.parse_time(args.period_end) if args.period_end \
        else (span[1] if span else 0)
    print(billing_stream.render_summary(stream.summary(begin, until),
                                        begin, until), flush=True)


def cmd_receive(args):
    if args.summarize:
        try:
            with open(args.summarize, encoding='utf-8') as f:
                items = [json.loads(line) for line in f if line.strip()]
        except (OSError, ValueError) as exc:
            print('cannot read %s: %s' % (args.summarize, exc),
                  file=sys.stderr)
            return EXIT_CONFIG
        _print_summary(items, args)
        return EXIT_OK

    def show(item):
        if not args.quiet:
            print(json.dumps(item), flush=True)

    rcv = receiver_mod.Receiver(host=args.bind, port=args.port,
                                secrets=args.secret or (),
                                store_path=args.store, on_item=show)
    print('Receiving on %s%s' % (rcv.url, ' (signatures required)'
                                 if args.secret else ''),
          file=sys.stderr, flush=True)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    rcv.start()
    done.wait()
    rcv.stop()
    print('accepted %d items, dropped %d duplicates, rejected %d requests'
          % (len(rcv.items), rcv.duplicates, len(rcv.rejected)),
          file=sys.stderr)
    if args.summary:
        _print_summary(rcv.items, args)
    return EXIT_OK


def cmd_demo(args):
    # Ceilometer imports eventlet, which warns on import that it is
    # deprecated; that is Ceilometer's business, not the demo's.
    warnings.filterwarnings('ignore', message=r'(?s).*Eventlet is deprecated')
    from scs_publisher import demo
    return demo.run(args)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='scs-publisher',
        description='Operate the scs:// publisher: its ledger, its sinks '
                    'and a reference receiver.',
        epilog='Exit codes: 0 success, 1 ledger or sink unreachable, '
               '2 configuration or usage error.')
    parser.add_argument('--version', action='version',
                        version=version.version_string())
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--config-file', action='append', metavar='PATH',
                        help='Ceilometer configuration file with '
                             '[scs_publisher] and [sink:NAME]; repeatable '
                             '(default: %s)' % DEFAULT_CONFIG_FILE)
    common.add_argument('--config-dir', action='append', metavar='DIR',
                        help='Directory of further *.conf files')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND',
                                required=True)

    def command(name, summary, func, with_config=True):
        sub_parser = sub.add_parser(
            name, help=summary, description=summary,
            parents=[common] if with_config else [])
        sub_parser.set_defaults(func=func)
        return sub_parser

    p = command('status', 'Per sink: pending items, oldest pending age, '
                'delivered, retrying, dead letters; quarantined inputs; '
                'billable resources.', cmd_status)
    p.add_argument('--format', choices=('table', 'json', 'prometheus'),
                   default='table',
                   help='"prometheus": the metrics in Prometheus\'s text '
                        'format, as served on [scs_publisher] '
                        'metrics_port.')

    p = command('deliver', 'Deliver from the ledger to every sink, in the '
                'foreground, until stopped (a service for '
                'dispatch_in_agent = False).', cmd_deliver)
    p.add_argument('--until-idle', type=float, metavar='SECONDS',
                   help='Stop when nothing is pending; fail if that takes '
                        'longer than SECONDS.')

    p = command('dead-letters', 'List items a sink gave up on, with reasons.',
                cmd_dead_letters)
    p.add_argument('--sink', help='Only this sink.')
    p.add_argument('--limit', type=int, default=100)
    p.add_argument('--format', choices=('text', 'json'), default='text')

    p = command('replay', 'Send items to a sink again: its dead letters '
                '(all, or --id), or everything accepted in a time range '
                '(--since/--until).', cmd_replay)
    p.add_argument('--sink', required=True)
    p.add_argument('--id', type=int, action='append', metavar='OUTBOX_ID',
                   help='A dead letter\'s outbox id; repeatable.')
    p.add_argument('--since', metavar='TIME', help='ISO 8601, UTC if no '
                   'offset is given.')
    p.add_argument('--until', metavar='TIME')

    command('check-config', 'Validate [scs_publisher] and every '
            '[sink:NAME] and reach the ledger; exit 2 on errors.',
            cmd_check_config)

    p = command('receive', 'Run the reference receiver: verify signatures, '
                'drop duplicate ids, store and print items.', cmd_receive,
                with_config=False)
    p.add_argument('--bind', default='127.0.0.1')
    p.add_argument('--port', type=int, default=8080)
    p.add_argument('--secret', action='append',
                   help='Signing secret to verify with; repeatable. '
                        'Without it, unsigned requests are accepted.')
    p.add_argument('--store', metavar='PATH',
                   help='Append accepted items to this JSON-lines file.')
    p.add_argument('--quiet', action='store_true',
                   help='Do not print accepted items.')
    p.add_argument('--summary', action='store_true',
                   help='On exit, print per project the billable '
                        'resource-hours and usage of the billing events '
                        'received.')
    p.add_argument('--summarize', metavar='PATH',
                   help='Do not receive: print that summary for the items '
                        'in a file written with --store, and exit.')
    p.add_argument('--period-start', metavar='TIME',
                   help='Start of the summary period (ISO 8601, UTC). '
                        'Default: the earliest time in the events.')
    p.add_argument('--period-end', metavar='TIME',
                   help='End of the summary period. Default: the latest '
                        'time in the events.')

    p = command('demo', 'Bill a simulated cloud end to end: its '
                'notifications and polling, with drops, duplicates and a '
                'sink outage, through the real Ceilometer pipelines and '
                'scs:// into a local receiver; compare with the truth.',
                cmd_demo, with_config=False)
    p.add_argument('--resources', type=int, default=60,
                   help='Resources in the scenario.')
    p.add_argument('--days', type=float, default=3,
                   help='Simulated days.')
    p.add_argument('--seed', type=int, default=1,
                   help='Seed of the scenario: the same seed, the same '
                        'cloud and the same trouble.')
    p.add_argument('--outage', type=int, default=3, metavar='REQUESTS',
                   help='How many deliveries the receiver fails (503).')
    p.add_argument('--report', default='scs-publisher-demo.html',
                   metavar='PATH', help='Where to write the HTML report.')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CommandError as exc:
        print('scs-publisher %s: %s' % (args.command, exc), file=sys.stderr)
        return exc.code
    except ledger_mod.LedgerUnavailable as exc:
        print('scs-publisher %s: ledger unavailable: %s'
              % (args.command, exc), file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == '__main__':
    sys.exit(main())
