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
"""What a recorded event or sample says about billable resources.

Reads the item as the outbox stores it (Ceilometer's serialized form) and
the resource definitions, and returns reconciler inputs:

* a :class:`reconcile.Observation` for a lifecycle event or a sample of a
  meter that proves a resource exists;
* a :class:`UsageSample` for a usage meter;
* a :class:`CycleMarker` for the completeness marker an inventory pollster
  sends after a complete listing of one resource type.
"""

import dataclasses
import json

from scs_publisher import billing
from scs_publisher import normalize
from scs_publisher import reconcile

#: The meter of completeness markers. ``resource_id`` is the cycle's id,
#: ``volume`` the number of resources listed; ``resource_metadata`` holds
#: ``resource_type``, ``listed`` and ``started_at`` (when listing began).
CYCLE_METER = 'scs.inventory.cycle'
#: Metadata key with which an inventory sample names its cycle.
CYCLE_KEY = 'scs_cycle_id'
# Metadata keys that carry a polled resource's creation time, besides the
# resource type's own started_at names.
_CREATED_KEYS = ('created_at',)


@dataclasses.dataclass
class UsageSample:
    resource_type: str
    resource_id: str
    meter: str
    at: float
    volume: float
    unit: str | None
    window: int
    evidence: str
    project_id: str | None = None
    user_id: str | None = None


@dataclasses.dataclass
class CycleMarker:
    resource_type: str
    cycle_id: str
    listed: int
    started_at: float
    at: float


@dataclasses.dataclass
class Sighting:
    """A resource sample; ``cycle_id`` if it came from an inventory
    cycle."""
    observation: reconcile.Observation
    cycle_id: str | None = None


class Observer:
    def __init__(self, definitions):
        self.definitions = definitions
        self._relevant = {}

    def wants(self, record):
        """Cheap test: could ``record`` say anything about billing?"""
        key = (record.kind, record.event_type)
        relevant = self._relevant.get(key)
        if relevant is None:
            if record.kind == normalize.KIND_EVENT:
                relevant = self.definitions.for_event(
                    record.event_type)[0] is not None
            elif record.kind == normalize.KIND_SAMPLE:
                relevant = record.event_type == CYCLE_METER or \
                    self.definitions.for_meter(record.event_type) is not None
            else:
                relevant = False
            self._relevant[key] = relevant
        return relevant

    def observe(self, record):
        """Reconciler inputs for ``record``; raises ``MalformedItem``."""
        item = record.item
        if item is None:
            try:
                item = json.loads(record.payload)
            except ValueError as exc:
                raise normalize.MalformedItem('not JSON: %s' % exc)
        if record.kind == normalize.KIND_EVENT:
            return self._event(item)
        return self._sample(item)

    def _event(self, item):
        rtype, step = self.definitions.for_event(item.get('event_type', ''))
        traits = {}
        for trait in item.get('traits') or ():
            if isinstance(trait, (list, tuple)) and len(trait) == 3:
                traits[trait[0]] = trait[2]
        resource_id = traits.get('resource_id')
        at = billing.parse_time(item.get('generated'))
        if not resource_id or at is None:
            raise normalize.MalformedItem(
                'event %s (%s) has no %s, which billing needs' % (
                    item.get('message_id'), item.get('event_type'),
                    'resource_id trait' if not resource_id else
                    'valid "generated" time'))
        attributes = {}
        for name, trait in rtype.attributes.items():
            value = traits.get(trait)
            if value is not None and value != '':
                attributes[name] = plain(value)
        return [reconcile.Observation(
            resource_type=rtype.name, resource_id=str(resource_id),
            step=step, at=at, origin=billing.ORIGIN_NOTIFICATION,
            evidence=str(item.get('message_id')),
            project_id=_text(traits.get('project_id')
                             or traits.get('tenant_id')),
            user_id=_text(traits.get('user_id')),
            attributes=attributes,
            started_hint=_first_time(traits, rtype.started_at),
            ended_hint=_first_time(traits, rtype.ended_at))]

    def _sample(self, item):
        meter = item.get('name')
        metadata = item.get('resource_metadata') or {}
        if not isinstance(metadata, dict):
            metadata = {}
        at = billing.parse_time(item.get('timestamp'))
        resource_id = item.get('resource_id')
        if at is None or not resource_id:
            raise normalize.MalformedItem(
                'sample %s of %s has no %s, which billing needs' % (
                    item.get('id'), meter,
                    'resource_id' if not resource_id else 'valid timestamp'))
        if meter == CYCLE_METER:
            return [self._marker(item, metadata, at)]
        rtype = self.definitions.for_meter(meter)
        volume = item.get('volume')
        if meter in rtype.usage_meters:
            if not isinstance(volume, (int, float)) or isinstance(
                    volume, bool):
                raise normalize.MalformedItem(
                    'usage sample %s of %s has no numeric volume'
                    % (item.get('id'), meter))
            return [UsageSample(
                resource_type=rtype.name, resource_id=str(resource_id),
                meter=meter, at=at, volume=float(volume),
                unit=item.get('unit'), window=rtype.usage_meters[meter],
                evidence=str(item.get('id')),
                project_id=_text(item.get('project_id')),
                user_id=_text(item.get('user_id')))]
        attributes = {}
        for name, source in rtype.meters[meter].attributes.items():
            if source == 'volume':
                value = volume
            else:
                value = metadata.get(source[len('metadata.'):])
            if value is not None and value != '':
                attributes[name] = plain(value)
        observation = reconcile.Observation(
            resource_type=rtype.name, resource_id=str(resource_id),
            step=reconcile.SEEN, at=at, origin=billing.ORIGIN_POLLING,
            evidence=str(item.get('id')),
            project_id=_text(item.get('project_id')),
            user_id=_text(item.get('user_id')), attributes=attributes,
            started_hint=_first_time(
                metadata, tuple(rtype.started_at) + _CREATED_KEYS))
        cycle = metadata.get(CYCLE_KEY)
        return [Sighting(observation, str(cycle) if cycle else None)]

    def _marker(self, item, metadata, at):
        rtype = metadata.get('resource_type')
        listed = metadata.get('listed', item.get('volume'))
        started = billing.parse_time(metadata.get('started_at'))
        if rtype not in self.definitions.types or not isinstance(
                listed, (int, float)) or started is None:
            raise normalize.MalformedItem(
                'inventory marker %s: needs metadata resource_type (one of '
                '%s), listed and started_at' % (
                    item.get('resource_id'),
                    ', '.join(sorted(self.definitions.types))))
        return CycleMarker(resource_type=rtype,
                           cycle_id=str(item['resource_id']),
                           listed=int(listed), started_at=started, at=at)


def plain(value):
    """Attribute values compare and encode the same whichever source told
    them: 10.0 (a sample's volume) is 10 (a trait)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True)


def _text(value):
    return str(value) if value not in (None, '') else None


def _first_time(mapping, names):
    for name in names:
        value = billing.parse_time(mapping.get(name))
        if value is not None:
            return value
    return None
