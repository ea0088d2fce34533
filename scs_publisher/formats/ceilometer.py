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
"""SCS-0412: the JSON Ceilometer's http publisher posts.

Raw samples are ``Sample.as_dict()``, raw events ``Event.serialize()``; a
batch is their JSON array. The outbox stores each raw item already encoded
the way ``json.dumps`` encodes it, so the body is byte for byte what
``ceilometer.publisher.http`` would have sent for the same items.

Billing events take the shape of a Ceilometer event, so a consumer written
for Ceilometer's format reads them unchanged: ``message_id`` is the billing
event's id, ``event_type`` e.g. ``scs.billing.resource.ended``,
``generated`` its effective time, and every field and attribute a trait
``[name, dtype, value]`` (dtype 1 string, 2 integer, 3 float, 4 datetime,
as in ``ceilometer.event.models.Trait``; times naive UTC like Ceilometer's).
"""

import json

from scs_publisher import billing
from scs_publisher import formats

STRING, INTEGER, FLOAT, DATETIME = 1, 2, 3, 4

# Fixed fields first, in this order; then the attributes.
_FIELDS = (
    ('resource_id', STRING), ('resource_type', STRING),
    ('project_id', STRING), ('user_id', STRING),
    ('effective_at', DATETIME), ('started_at', DATETIME),
    ('ended_at', DATETIME), ('recorded_at', DATETIME), ('origin', STRING),
    ('sequence', INTEGER), ('meter', STRING), ('unit', STRING),
    ('quantity', FLOAT), ('window_start', DATETIME),
    ('window_end', DATETIME), ('sample_count', INTEGER),
    ('supersedes', STRING), ('corrects', STRING), ('reason', STRING),
    ('retracted', STRING), ('evidence', STRING))


def _naive(text):
    return text[:-1] if text.endswith('Z') else text


def _trait(name, dtype, value):
    if dtype == DATETIME:
        return [name, DATETIME, _naive(value)]
    if dtype == FLOAT:
        return [name, FLOAT, float(value)]
    if isinstance(value, bool):
        return [name, STRING, 'true' if value else 'false']
    if isinstance(value, list):
        return [name, STRING, ' '.join(str(v) for v in value)]
    return [name, dtype, value]


def _attribute(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _trait(name, STRING, value if isinstance(value, (
            str, bool)) else json.dumps(value))
    return [name, INTEGER if isinstance(value, int) else FLOAT, value]


def billing_event(data):
    """A billing event's canonical dict in Ceilometer's event shape."""
    traits = [_trait(name, dtype, data[name]) for name, dtype in _FIELDS
              if data.get(name) is not None]
    traits += [_attribute(name, value)
               for name, value in sorted(data['attributes'].items())
               if value is not None]
    return {'message_id': data['id'], 'event_type': data['type'],
            'generated': _naive(data['effective_at']), 'traits': traits,
            'raw': {}}


class CeilometerFormat(formats.Format):
    content_type = 'application/json'

    def render(self, item):
        if item.kind == billing.KIND:
            return json.dumps(billing_event(json.loads(item.payload)))
        return item.payload
