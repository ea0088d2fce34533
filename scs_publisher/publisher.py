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
"""The ``scs://`` publisher for Ceilometer's sample and event pipelines.

Add ``- scs://`` to the publishers of ``pipeline.yaml`` and
``event_pipeline.yaml``. Every call returns only after its items are
committed to the ledger; delivery to the sinks happens afterwards, from the
ledger, with retries.

If the ledger cannot be written, ``publish_events`` raises so that, with
``[notification] ack_on_event_error = False``, RabbitMQ redelivers the
notification; ``publish_samples`` keeps the samples in a local fallback
journal instead, because Ceilometer acks sample notifications whatever a
publisher does.
"""

from ceilometer import publisher
from oslo_log import log

from scs_publisher import normalize
from scs_publisher import runtime as runtime_mod

LOG = log.getLogger(__name__)

_EXCERPT = 1000


class ScsPublisher(publisher.ConfigPublisherBase):

    def __init__(self, conf, parsed_url):
        # Ceilometer drops a publisher whose constructor raises, silently
        # losing its data: nothing here touches the network or the ledger.
        super().__init__(conf, parsed_url)
        self._conf = conf
        try:
            # Starts the dispatcher threads, so a backlog left by a previous
            # run is delivered even before the first new notification.
            runtime_mod.get_runtime(conf)
        except Exception:
            LOG.exception('scs_publisher could not start; it will try '
                          'again on the first publish')

    @property
    def runtime(self):
        return runtime_mod.get_runtime(self._conf)

    def publish_samples(self, samples):
        records, quarantined = _records(samples, normalize.sample_record,
                                        normalize.KIND_SAMPLE)
        self.runtime.accept_or_journal(records, quarantined)

    def publish_events(self, events):
        records, quarantined = _records(events, normalize.event_record,
                                        normalize.KIND_EVENT)
        self.runtime.accept(records, quarantined)


def _records(items, to_record, kind):
    records, quarantined = [], []
    for item in items:
        try:
            records.append(to_record(item))
        except normalize.MalformedItem as exc:
            LOG.warning('Quarantined a malformed %s: %s', kind, exc)
            quarantined.append((kind, str(exc), repr(item)[:_EXCERPT]))
    return records, quarantined
