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
"""CloudEvents 1.0, JSON batch mode (``application/cloudevents-batch+json``).

Raw items become one CloudEvent each:

* a sample: ``type`` ``org.openstack.ceilometer.sample.<meter>``, ``id`` the
  sample id, ``subject`` its resource id, ``time`` its timestamp;
* an event: ``type`` ``org.openstack.ceilometer.event.<event_type>``, ``id``
  its message_id, ``subject`` its ``resource_id`` trait when it has one,
  ``time`` when it was generated.

``data`` is the item in the Ceilometer shape, ``source`` is
``/scs/<[scs_publisher] source>``.

Billing events: ``type`` e.g. ``scs.billing.resource.ended``, ``id`` the
billing event's id, ``subject`` ``<resource_type>/<resource_id>``, ``time``
its effective time, ``data`` its fields (see the sink protocol).
"""

import json

from scs_publisher import billing
from scs_publisher import formats
from scs_publisher import normalize

SAMPLE_TYPE_PREFIX = 'org.openstack.ceilometer.sample.'
EVENT_TYPE_PREFIX = 'org.openstack.ceilometer.event.'


def _rfc3339(timestamp):
    """Ceilometer writes naive UTC ISO 8601; CloudEvents wants RFC 3339."""
    if not timestamp:
        return None
    text = str(timestamp)
    if text.endswith('Z') or '+' in text[10:] or text[10:].count('-'):
        return text
    return text + 'Z'


class CloudEventsFormat(formats.Format):
    content_type = 'application/cloudevents-batch+json'

    def render(self, item):
        data = json.loads(item.payload)
        if item.kind == billing.KIND:
            return json.dumps(self._billing(data))
        envelope = {'specversion': '1.0', 'id': item.item_id,
                    'source': '/scs/%s' % self.source,
                    'datacontenttype': 'application/json'}
        if item.kind == normalize.KIND_SAMPLE:
            envelope['type'] = SAMPLE_TYPE_PREFIX + item.event_type
            envelope['subject'] = data.get('resource_id')
            envelope['time'] = _rfc3339(data.get('timestamp'))
        else:
            envelope['type'] = EVENT_TYPE_PREFIX + item.event_type
            traits = {t[0]: t[2] for t in data.get('traits') or ()}
            envelope['subject'] = traits.get('resource_id')
            envelope['time'] = _rfc3339(data.get('generated'))
        envelope = {k: v for k, v in envelope.items() if v is not None}
        envelope['data'] = data
        return json.dumps(envelope)

    def _billing(self, data):
        envelope = {'specversion': '1.0', 'id': data.pop('id'),
                    'source': '/scs/%s' % self.source,
                    'type': data.pop('type'),
                    'subject': '%s/%s' % (data['resource_type'],
                                          data['resource_id']),
                    'time': data['effective_at'],
                    'datacontenttype': 'application/json'}
        envelope['data'] = data
        return envelope
