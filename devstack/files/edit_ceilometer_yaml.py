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
"""Edit Ceilometer's YAML files for scs_publisher, as YAML (DevStack).

    edit_ceilometer_yaml.py pipeline FILE         # scs:// in every sink
    edit_ceilometer_yaml.py event-pipeline FILE   # a sink of its own
    edit_ceilometer_yaml.py polling FILE SECONDS  # the inventory pollsters

Running it twice changes nothing the second time.
"""

import sys

import yaml

PUBLISHER = 'scs://'
EVENT_SOURCE, EVENT_SINK = 'scs_event_source', 'scs_event_sink'
INVENTORY_SOURCE = 'scs_inventory'
INVENTORY_METERS = ['scs.inventory.%s' % t for t in (
    'instance', 'volume', 'volume_snapshot', 'volume_backup', 'image',
    'floating_ip')]


def pipeline(data):
    """Samples: scs:// beside the existing publishers (a failing
    publisher cannot lose samples for the others, see the docs)."""
    for sink in data.setdefault('sinks', []):
        publishers = sink.setdefault('publishers', [])
        if PUBLISHER not in publishers:
            publishers.append(PUBLISHER)


def event_pipeline(data):
    """Events: scs:// alone in a sink of its own, so that its exception
    (ledger unavailable) reaches the agent and the event is requeued."""
    sources = data.setdefault('sources', [])
    if not any(s.get('name') == EVENT_SOURCE for s in sources):
        sources.append({'name': EVENT_SOURCE, 'events': ['*'],
                        'sinks': [EVENT_SINK]})
    sinks = data.setdefault('sinks', [])
    if not any(s.get('name') == EVENT_SINK for s in sinks):
        sinks.append({'name': EVENT_SINK, 'publishers': [PUBLISHER]})


def polling(data, interval):
    sources = data.setdefault('sources', [])
    for source in sources:
        if source.get('name') == INVENTORY_SOURCE:
            source['interval'] = interval
            return
    sources.append({'name': INVENTORY_SOURCE, 'interval': interval,
                    'meters': list(INVENTORY_METERS)})


def main(argv):
    kind, path = argv[1], argv[2]
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if kind == 'pipeline':
        pipeline(data)
    elif kind == 'event-pipeline':
        event_pipeline(data)
    elif kind == 'polling':
        polling(data, int(argv[3]))
    else:
        sys.exit('unknown kind %r' % kind)
    with open(path, 'w') as f:
        f.write('---\n')
        yaml.safe_dump(data, f, default_flow_style=False, sort_keys=False)


if __name__ == '__main__':
    main(sys.argv)
