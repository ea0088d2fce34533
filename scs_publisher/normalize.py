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
"""Turn Ceilometer samples and events into ledger records.

A record carries the dedup key that decides whether it was seen before,
and the item exactly as Ceilometer's http publisher would serialize it
(``Sample.as_dict()``, ``Event.serialize()``), already JSON-encoded so a
sink can send it byte for byte.
"""

import dataclasses
import hashlib
import json

KIND_SAMPLE = 'sample'
KIND_EVENT = 'event'
CONTENT_RAW = 'raw'
CONTENT_BILLING = 'billing'

# Fields of Sample.as_dict() that change when Ceilometer redelivers the
# same notification (a fresh uuid1) and so must not be part of its key.
_UNSTABLE_SAMPLE_FIELDS = ('id', 'monotonic_time')


class MalformedItem(ValueError):
    """An item that cannot be recorded; quarantined, never retried."""


@dataclasses.dataclass(frozen=True)
class Record:
    dedup_key: str
    content: str
    kind: str
    item_id: str
    event_type: str
    project_id: str | None
    payload: str
    #: The item as a dict, when it was made in this process: spares the
    #: reconciler decoding ``payload`` again. Never stored.
    item: dict | None = dataclasses.field(default=None, compare=False,
                                          repr=False)


def _digest(text):
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def _dumps(obj):
    # json.dumps with its default separators: what Ceilometer's http
    # publisher produces, so items can be joined into its exact body.
    return json.dumps(obj)


def sample_record(sample):
    """Record for a ``ceilometer.sample.Sample``.

    Keyed on content, not id: Ceilometer gives a notification-derived sample
    a new uuid every time the notification is redelivered, while the same
    meter, resource, time, volume and metadata is the same fact. Polled
    samples keep their id across redelivery, and their content too, so the
    content key drops their duplicates just as well.
    """
    item = sample.as_dict()
    try:
        stable = _dumps({k: v for k, v in item.items()
                         if k not in _UNSTABLE_SAMPLE_FIELDS})
        if tuple(item)[-2:] == _UNSTABLE_SAMPLE_FIELDS:
            # as_dict() ends with these two: append them to the stable
            # text instead of encoding the whole sample a second time.
            payload = '%s, "id": %s, "monotonic_time": %s}' % (
                stable[:-1], _dumps(item['id']),
                _dumps(item['monotonic_time']))
        else:
            payload = _dumps(item)
    except (TypeError, ValueError) as exc:
        raise MalformedItem('sample %s of %s is not JSON-serializable: %s'
                            % (item.get('name'), item.get('resource_id'),
                               exc)) from exc
    key = _digest('sample:' + stable)
    return Record(dedup_key=key, content=CONTENT_RAW, kind=KIND_SAMPLE,
                  item_id=str(item['id']), event_type=str(item['name']),
                  project_id=item.get('project_id'), payload=payload,
                  item=item)


def event_record(event):
    """Record for a ``ceilometer.event.models.Event``, keyed on message_id,
    which redelivery keeps."""
    if not event.message_id:
        raise MalformedItem('event %s has no message_id' % event.event_type)
    item = event.serialize()
    try:
        payload = _dumps(item)
    except (TypeError, ValueError) as exc:
        raise MalformedItem('event %s (%s) is not JSON-serializable: %s'
                            % (event.message_id, event.event_type,
                               exc)) from exc
    project_id = None
    for trait in event.traits:
        if trait.name in ('project_id', 'tenant_id') and trait.value:
            project_id = str(trait.value)
            break
    key = _digest('event:%s' % event.message_id)
    return Record(dedup_key=key, content=CONTENT_RAW, kind=KIND_EVENT,
                  item_id=str(event.message_id),
                  event_type=str(event.event_type), project_id=project_id,
                  payload=payload, item=item)


_STORED_FIELDS = ('dedup_key', 'content', 'kind', 'item_id', 'event_type',
                  'project_id', 'payload')


def record_to_json(record):
    return json.dumps({name: getattr(record, name)
                       for name in _STORED_FIELDS})


def record_from_json(text):
    return Record(**json.loads(text))
