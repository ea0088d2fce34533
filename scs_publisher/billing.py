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
"""Billing events: the facts a provider bills from.

A billing event is stored in the outbox as the JSON of :meth:`as_dict`
(``content = billing``); the wire formats render it from there. Its id is
a UUIDv5 over this cloud's ``source``, the resource, the kind of fact and
its effective time (or usage window), so every process that derives the
same fact gives it the same id and the outbox stores it once.
"""

import dataclasses
import datetime
import json
import uuid

# Fixed forever: changing it would change every id.
NAMESPACE = uuid.UUID('5c0b7f3e-3a57-5bd4-9d3c-5ca1ab1e0411')

TYPE_PREFIX = 'scs.billing.'
STARTED = 'resource.started'
CHANGED = 'resource.changed'
ENDED = 'resource.ended'
USAGE = 'usage'
CORRECTION = 'correction'
TYPES = (STARTED, CHANGED, ENDED, USAGE, CORRECTION)

ORIGIN_NOTIFICATION = 'notification'
ORIGIN_POLLING = 'polling'
ORIGIN_RECONCILIATION = 'reconciliation'

# Why a correction supersedes an event.
REASON_LATE_NOTIFICATION = 'late_notification'
REASON_OUT_OF_ORDER = 'out_of_order'
REASON_DRIFT = 'drift'
REASON_REAPPEARED = 'reappeared'
REASON_LATE_SAMPLE = 'late_sample'

KIND = 'billing'


def event_id(source, resource_type, resource_id, kind, *parts):
    """The deterministic id of a fact."""
    name = '|'.join((source, resource_type, resource_id, kind)
                    + tuple(str(p) for p in parts))
    return str(uuid.uuid5(NAMESPACE, name))


def isotime(epoch):
    """Epoch seconds as RFC 3339 UTC (``2026-12-03T10:15:02Z``); None
    stays None."""
    if epoch is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    text = moment.strftime('%Y-%m-%dT%H:%M:%S')
    if moment.microsecond:
        text += '.%06d' % moment.microsecond
    return text + 'Z'


def parse_time(value):
    """Epoch seconds from an ISO 8601 text (naive means UTC, as Ceilometer
    writes it), a datetime or a number; None for anything else."""
    if value is None or value == '':
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    return None


@dataclasses.dataclass
class BillingEvent:
    id: str
    type: str
    resource_id: str
    resource_type: str
    project_id: str | None
    user_id: str | None
    effective_at: float
    recorded_at: float
    origin: str
    sequence: int
    attributes: dict = dataclasses.field(default_factory=dict)
    evidence: list = dataclasses.field(default_factory=list)
    started_at: float | None = None
    ended_at: float | None = None
    # usage
    meter: str | None = None
    unit: str | None = None
    quantity: float | None = None
    window_start: float | None = None
    window_end: float | None = None
    sample_count: int | None = None
    # correction
    supersedes: str | None = None
    corrects: str | None = None
    reason: str | None = None
    retracted: bool | None = None

    @property
    def event_type(self):
        return TYPE_PREFIX + self.type

    def as_dict(self):
        """The canonical form: times as RFC 3339 text, unset fields left
        out."""
        data = {'id': self.id, 'type': self.event_type,
                'resource_id': self.resource_id,
                'resource_type': self.resource_type,
                'project_id': self.project_id, 'user_id': self.user_id,
                'attributes': self.attributes}
        for name in ('started_at', 'ended_at', 'effective_at',
                     'recorded_at', 'window_start', 'window_end'):
            value = getattr(self, name)
            if value is not None:
                data[name] = isotime(value)
        data.update({'origin': self.origin, 'sequence': self.sequence,
                     'evidence': self.evidence})
        for name in ('meter', 'unit', 'quantity', 'sample_count',
                     'supersedes', 'corrects', 'reason', 'retracted'):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    def to_json(self):
        return json.dumps(self.as_dict(), sort_keys=False)
