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
"""Ceilometer's real notification pipelines, run inside this process.

The demo, the benchmarks and the tests use this to hand notifications to
Ceilometer's own endpoints (event conversion, meter definitions) and
pipeline managers exactly as ``ceilometer-agent-notification`` does after
it has read them from the bus, without needing the bus.
"""

import os

from ceilometer.pipeline import event as event_pipe
from ceilometer.pipeline import sample as sample_pipe
from ceilometer import service
import oslo_messaging
import yaml


def write_pipelines(directory, publishers):
    """Write pipeline.yaml and event_pipeline.yaml that send everything to
    ``publishers``; returns their paths."""
    paths = []
    for name, key in (('pipeline.yaml', 'meters'),
                      ('event_pipeline.yaml', 'events')):
        path = os.path.join(directory, name)
        with open(path, 'w') as f:
            yaml.safe_dump({
                'sources': [{'name': 'all', key: ['*'], 'sinks': ['out']}],
                'sinks': [{'name': 'out', 'publishers': list(publishers)}],
            }, f)
        paths.append(path)
    return paths


def write_conf(directory, sink, sink_options, publisher_options=None):
    """Write ``directory``/ceilometer.conf: logging to a file there, a
    ledger under ``directory`` and one sink ``[sink:<sink>]``; returns its
    path."""
    path = os.path.join(directory, 'ceilometer.conf')
    publisher = dict(state_path=directory, sinks=sink,
                     **(publisher_options or {}))
    with open(path, 'w') as f:
        f.write('[DEFAULT]\nlog_file = %s\n'
                % os.path.join(directory, 'agent.log'))
        for group, options in (('scs_publisher', publisher),
                               ('sink:%s' % sink, sink_options)):
            f.write('[%s]\n' % group)
            f.writelines('%s = %s\n' % item for item in options.items())
    return path


def prepare_conf(config_files, directory, publishers):
    """A Ceilometer configuration reading ``config_files``, with pipelines
    that publish everything to ``publishers``."""
    conf = service.prepare_service([], list(config_files))
    pipeline, event_pipeline = write_pipelines(directory, publishers)
    conf.set_override('pipeline_cfg_file', pipeline)
    conf.set_override('event_pipeline_cfg_file', event_pipeline)
    return conf


class Pipelines:
    """The event and sample endpoints of the real pipeline managers."""

    def __init__(self, conf):
        self.event_manager = event_pipe.EventPipelineManager(conf)
        self.sample_manager = sample_pipe.SamplePipelineManager(conf)
        self.endpoints = (self.event_manager.get_main_endpoints() +
                          self.sample_manager.get_main_endpoints())

    def publishers(self):
        """Every publisher instance the pipelines built."""
        found = []
        for manager in (self.event_manager, self.sample_manager):
            for pipeline in manager.pipelines:
                for p in pipeline.publishers:
                    if p not in found:
                        found.append(p)
        return found

    def feed(self, messages):
        """Hand one batch of notifications to every endpoint that wants
        them, as oslo.messaging's batch dispatcher does; returns True if an
        endpoint asked for the batch to be requeued."""
        requeue = False
        by_priority = {}
        for message in messages:
            by_priority.setdefault(message.get('priority', 'INFO').lower(),
                                   []).append(message)
        for endpoint in self.endpoints:
            for priority, batch in by_priority.items():
                if self._deliver(endpoint, priority, batch):
                    requeue = True
        return requeue

    @staticmethod
    def _deliver(endpoint, priority, messages):
        # The polling agent's samples come at priority "sample", and
        # only endpoints with a method of that name take them.
        handler = getattr(endpoint, priority, None)
        screen = getattr(endpoint, 'filter_rule', None)
        wanted = [m for m in messages if screen is None or screen.match(
            m['ctxt'], m['publisher_id'], m['event_type'],
            m['metadata'], m['payload'])]
        requeue = False
        if handler is not None and wanted:
            try:
                result = handler(wanted)
            except Exception:
                # oslo.messaging requeues a batch whose callback raised.
                result = oslo_messaging.NotificationResult.REQUEUE
            if result == oslo_messaging.NotificationResult.REQUEUE:
                requeue = True
        return requeue
