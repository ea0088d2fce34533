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
"""Configuration options: ``[scs_publisher]`` and one ``[sink:NAME]`` per sink.

Sink groups are named by the operator, so they are registered at run time
from ``[scs_publisher] sinks``. The options of a sink are the common ones
below plus those its driver declares (see :mod:`scs_publisher.sinks`).
"""

import os

from oslo_config import cfg

GROUP = 'scs_publisher'


class ConfigError(Exception):
    """A configuration that cannot work; the message names the option."""


# Five seconds, then minutes, then hours: in the spirit of Standard Webhooks.
# The last step repeats until ``max_retry_age`` has passed.
DEFAULT_RETRY_SCHEDULE = [5, 30, 120, 600, 1800, 3600, 10800, 21600]

PUBLISHER_OPTS = [
    cfg.StrOpt('state_path',
               default='/var/lib/ceilometer/scs_publisher',
               help='Directory for the default SQLite ledger and for the '
                    'fallback journal of samples that could not be written '
                    'to the ledger. Created 0700 if missing.'),
    cfg.StrOpt('connection',
               secret=True,
               help='SQLAlchemy URL of the ledger. Defaults to an SQLite '
                    'file "ledger.sqlite" under state_path, which serves '
                    'every agent on one host. Agents on several hosts share '
                    'a ledger on MariaDB ("mysql+pymysql://...") or '
                    'PostgreSQL ("postgresql+psycopg://...").'),
    cfg.StrOpt('source',
               default='RegionOne',
               help='Identity of this cloud or region. Used as the '
                    'CloudEvents "source" (/scs/<source>) and in the '
                    'deterministic ids of billing events, so two regions '
                    'never produce the same id.'),
    cfg.ListOpt('sinks',
                default=[],
                help='Names of the sinks to deliver to. Each name needs a '
                     'group [sink:NAME] with at least "url".'),
    cfg.StrOpt('resource_definitions',
               help='YAML file of billable resource types: which events '
                    'and meters tell their lifecycle and attributes. '
                    'Defaults to the packaged billing_resources.yaml.'),
    cfg.FloatOpt('reconcile_settle',
                 default=300, min=0,
                 help='Seconds a fact inferred from polling (a resource '
                      'first seen by a pollster, an attribute that '
                      'drifted, an end inferred from absence) waits before '
                      'it is emitted, for the notification that would tell '
                      'it exactly: a sample and its notification travel '
                      'separately. Facts from notifications are emitted at '
                      'once.'),
    cfg.IntOpt('absence_cycles',
               default=2, min=1,
               help='A resource missing from this many consecutive '
                    'complete inventory cycles is ended. Absence from an '
                    'incomplete cycle, or from stock pollsters, never ends '
                    'anything.'),
    cfg.StrOpt('absence_end',
               default='last_seen',
               choices=[('last_seen', 'The last time the resource was '
                         'seen (by polling or a notification).'),
                        ('first_missed', 'When the first complete cycle '
                         'that missed it began listing.')],
               help='Effective time of an end inferred from absence.'),
    cfg.IntOpt('usage_grace',
               default=900, min=0,
               help='Seconds after a usage window closes before its usage '
                    'event is emitted. A sample arriving later makes a '
                    'correction.'),
    cfg.IntOpt('state_retention',
               default=30 * 24 * 3600, min=24 * 3600,
               help='Seconds the reconciler keeps the state of an ended '
                    'resource and of finalized usage windows, to recognise '
                    'late and duplicate notifications about them.'),
    cfg.IntOpt('dedup_retention',
               default=7 * 24 * 3600, min=3600,
               help='Seconds an accepted item is kept at least, so that its '
                    'key (an event\'s message_id, a sample\'s content) '
                    'drops the same item arriving again. Must outlast '
                    'RabbitMQ redelivery and agent restarts.'),
    cfg.IntOpt('outbox_retention',
               default=7 * 24 * 3600, min=0,
               help='Seconds an accepted item is kept at least, so that '
                    '"scs-publisher replay" can send a time range again. '
                    'Items still pending or dead-lettered for any sink are '
                    'never removed.'),
    cfg.BoolOpt('dispatch_in_agent',
                default=True,
                help='Run the dispatcher as threads inside the Ceilometer '
                     'agent. Turn off to run "scs-publisher deliver" as a '
                     'separate service instead.'),
    cfg.FloatOpt('poll_interval',
                 default=0.2, min=0.01,
                 help='Seconds between a dispatcher\'s looks at the ledger '
                      'for items written by other processes. Items written '
                      'in the same process wake the dispatcher at once.'),
    cfg.FloatOpt('batch_linger',
                 default=0.1, min=0,
                 help='Seconds a woken dispatcher waits for more items '
                      'before it delivers, so that items gather into '
                      'batches instead of one delivery per notification. '
                      'A sink with a backlog is served without waiting.'),
    cfg.IntOpt('lease_seconds',
               default=60, min=5,
               help='How long a dispatcher owns a sink before another '
                    'process may take it over. Renewed while it works; '
                    'raised automatically to twice a sink\'s timeout.'),
    cfg.PortOpt('metrics_port',
                default=0,
                help='Serve Prometheus metrics on this port at /metrics '
                     'from the process that runs the dispatcher (the agent, '
                     'or "scs-publisher deliver"). 0: not served; '
                     '"scs-publisher status --format prometheus" prints '
                     'them anyway.'),
    cfg.HostAddressOpt('metrics_host',
                       default='127.0.0.1',
                       help='Address to serve metrics on. Use 0.0.0.0 to '
                            'let a Prometheus server on another host '
                            'scrape it.'),
    cfg.StrOpt('sqlite_synchronous',
               default='normal',
               choices=[('normal', 'A commit survives a crash or SIGKILL '
                         'of the agent (WAL); the last commits may be lost '
                         'on power failure.'),
                        ('full', 'Every commit is synced to disk; survives '
                         'power failure, at a cost per commit.')],
               help='Durability of the SQLite ledger.'),
]

SINK_OPTS = [
    cfg.StrOpt('url',
               help='Where to deliver. The scheme picks the driver: '
                    'https://, http://, file:// (entry point group '
                    'scs_publisher.sinks).'),
    cfg.StrOpt('format',
               default='ceilometer',
               help='Wire format. "ceilometer": a JSON array in the shape '
                    'Ceilometer\'s http publisher posts (SCS-0412). '
                    '"cloudevents": CloudEvents 1.0 batch '
                    '(application/cloudevents-batch+json). Other formats '
                    'come from the entry point group scs_publisher.formats.'),
    cfg.StrOpt('content',
               default='billing',
               choices=[('billing', 'Finalized billing events.'),
                        ('raw', 'The samples and events Ceilometer hands '
                         'to scs://, as its http publisher would send '
                         'them.')],
               help='What this sink receives.'),
    cfg.IntOpt('batch_size',
               default=100, min=1, max=10000,
               help='Most items in one delivery.'),
    cfg.ListOpt('retry_schedule',
                item_type=cfg.types.Integer(min=0),
                default=DEFAULT_RETRY_SCHEDULE,
                help='Seconds to wait before each retry of a failed '
                     'delivery (with 20% jitter); the last step repeats. '
                     'A Retry-After answer overrides the step.'),
    cfg.IntOpt('max_retry_age',
               default=3 * 24 * 3600, min=0,
               help='Seconds after which a failing item becomes a dead '
                    'letter, counted from when it entered the ledger.'),
    cfg.ListOpt('event_types',
                default=['*'],
                help='Deliver only items whose event type (or meter name, '
                     'for raw samples) matches one of these shell patterns. '
                     'Items filtered out count as delivered.'),
    cfg.ListOpt('projects',
                default=[],
                help='Deliver only items of these project ids. Empty: all '
                     'projects.'),
]


def register_publisher_opts(conf):
    conf.register_opts(PUBLISHER_OPTS, group=GROUP)


def sink_group(name):
    return 'sink:%s' % name


def reconcile_settings(conf):
    from scs_publisher import reconcile
    group = conf[GROUP]
    return reconcile.Settings(
        source=group.source, settle=group.reconcile_settle,
        absence_cycles=group.absence_cycles, absence_end=group.absence_end,
        usage_grace=group.usage_grace)


def ledger_url(conf):
    """The configured ledger URL, or the default SQLite file."""
    group = conf[GROUP]
    if group.connection:
        return group.connection
    return 'sqlite:///' + os.path.join(group.state_path, 'ledger.sqlite')


def list_opts():
    """Options for oslo-config-generator.

    Sink groups are named by the operator; ``[sink:example]`` shows what
    such a group holds for the http driver.
    """
    from scs_publisher.pollsters import inventory
    from scs_publisher.sinks import http
    return [
        (GROUP, PUBLISHER_OPTS),
        (inventory.GROUP, inventory.OPTS),
        (sink_group('example'), SINK_OPTS + http.HttpSink.OPTS),
    ]
