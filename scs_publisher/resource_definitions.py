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
"""Billable resource types: which events and meters tell their lifecycle.

Read from ``scs_publisher/data/billing_resources.yaml`` (the packaged
definitions) or the file in ``[scs_publisher] resource_definitions``, and
validated as a whole at start: every error names the file, the resource
type and the key.
"""

import dataclasses
import fnmatch
import os

import yaml

PACKAGED = os.path.join(os.path.dirname(__file__), 'data',
                        'billing_resources.yaml')

LIFECYCLE = ('create', 'update', 'delete')
_RESOURCE_KEYS = {'events', 'attributes', 'started_at', 'ended_at',
                  'meters', 'usage_meters'}
# Fields every billing event has; attributes are flattened next to them
# (as traits, in the ceilometer format), so they must not share a name.
RESERVED_NAMES = frozenset((
    'id', 'type', 'resource_id', 'resource_type', 'project_id', 'user_id',
    'attributes', 'started_at', 'ended_at', 'effective_at', 'recorded_at',
    'origin', 'sequence', 'evidence', 'meter', 'unit', 'quantity',
    'window_start', 'window_end', 'sample_count', 'supersedes', 'corrects',
    'reason', 'retracted'))


class DefinitionError(ValueError):
    """A resource definitions file that cannot be used."""


@dataclasses.dataclass(frozen=True)
class MeterSource:
    """A meter that proves a resource exists, and the attributes it
    carries: attribute name -> ``volume`` or ``metadata.<key>``."""
    meter: str
    attributes: dict


@dataclasses.dataclass(frozen=True)
class ResourceType:
    name: str
    events: dict                 # lifecycle step -> [event type patterns]
    attributes: dict             # billing attribute -> trait name
    started_at: tuple
    ended_at: tuple
    meters: dict                 # meter name -> MeterSource
    usage_meters: dict           # meter name -> window seconds

    @property
    def all_attributes(self):
        """Every attribute a notification or a meter tells."""
        names = set(self.attributes)
        for source in self.meters.values():
            names.update(source.attributes)
        return frozenset(names)

    def step_of(self, event_type):
        """``create``, ``update``, ``delete`` or None for ``event_type``."""
        for step in LIFECYCLE:
            if any(fnmatch.fnmatchcase(event_type, pattern)
                   for pattern in self.events.get(step, ())):
                return step
        return None


class Definitions:
    def __init__(self, resource_types, source):
        self.types = {t.name: t for t in resource_types}
        self.source = source
        self._by_meter = {}
        for rtype in resource_types:
            for meter in list(rtype.meters) + list(rtype.usage_meters):
                self._by_meter[meter] = rtype

    def for_event(self, event_type):
        """``(ResourceType, step)`` for a Ceilometer event type, or
        ``(None, None)`` if no billable type is told by it."""
        for rtype in self.types.values():
            step = rtype.step_of(event_type)
            if step:
                return rtype, step
        return None, None

    def for_meter(self, meter):
        """The resource type a meter belongs to, or None."""
        return self._by_meter.get(meter)


def load(path=None):
    """Load and validate; raises :class:`DefinitionError`."""
    path = path or PACKAGED
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise DefinitionError('%s: cannot read: %s' % (path, exc.strerror))
    except yaml.YAMLError as exc:
        raise DefinitionError('%s: not valid YAML: %s' % (path, exc))
    return Definitions(_parse(data, path), path)


def _parse(data, path):
    if not isinstance(data, dict) or not isinstance(
            data.get('resources'), dict) or not data['resources']:
        raise DefinitionError('%s: expected a mapping with a non-empty '
                              '"resources" mapping' % path)
    if data.get('version', 1) != 1:
        raise DefinitionError('%s: version %r is not supported (1 is)'
                              % (path, data.get('version')))
    types = [_resource(path, name, spec)
             for name, spec in data['resources'].items()]
    _check_overlaps(path, types)
    return types


def _resource(path, name, spec):
    def fail(key, message):
        raise DefinitionError('%s: resource type "%s": %s: %s'
                              % (path, name, key, message))

    if not isinstance(spec, dict):
        fail('(definition)', 'expected a mapping')
    unknown = set(spec) - _RESOURCE_KEYS
    if unknown:
        fail(sorted(unknown)[0], 'unknown key (known: %s)'
             % ', '.join(sorted(_RESOURCE_KEYS)))
    events = spec.get('events') or {}
    if not isinstance(events, dict) or set(events) - set(LIFECYCLE):
        fail('events', 'expected a mapping with create, update, delete')
    for step, patterns in events.items():
        if not _strings(patterns):
            fail('events.%s' % step, 'expected a list of event types')
    attributes = spec.get('attributes') or {}
    if not isinstance(attributes, dict) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in attributes.items()):
        fail('attributes', 'expected a mapping of attribute to trait name')
    meters = {}
    for meter, fields in (spec.get('meters') or {}).items():
        fields = fields or {}
        if not isinstance(fields, dict):
            fail('meters.%s' % meter, 'expected a mapping of attribute to '
                 '"volume" or "metadata.<key>"')
        for attr, source in fields.items():
            if source != 'volume' and not (
                    isinstance(source, str) and source.startswith(
                        'metadata.') and len(source) > len('metadata.')):
                fail('meters.%s.%s' % (meter, attr), '%r is neither '
                     '"volume" nor "metadata.<key>"' % (source,))
        meters[meter] = MeterSource(meter, dict(fields))
    usage = {}
    for meter, options in (spec.get('usage_meters') or {}).items():
        window = (options or {}).get('window', 3600)
        if not isinstance(window, int) or isinstance(window, bool) or \
                window <= 0:
            fail('usage_meters.%s.window' % meter,
                 'expected a positive number of seconds')
        if meter in meters:
            fail('usage_meters.%s' % meter, 'also listed under meters')
        usage[meter] = window
    for key in ('started_at', 'ended_at'):
        if key in spec and not _strings(spec[key]):
            fail(key, 'expected a list of trait names')
    all_attributes = set(attributes)
    for source in meters.values():
        all_attributes.update(source.attributes)
    clash = sorted(all_attributes & RESERVED_NAMES)
    if clash:
        fail('attributes', '"%s" is a field of every billing event; '
             'choose another name' % clash[0])
    if not (events or meters or usage):
        fail('(definition)', 'needs events, meters or usage_meters')
    return ResourceType(
        name=name, events={k: list(v) for k, v in events.items()},
        attributes=dict(attributes),
        started_at=tuple(spec.get('started_at') or ()),
        ended_at=tuple(spec.get('ended_at') or ()), meters=meters,
        usage_meters=usage)


def _strings(value):
    return isinstance(value, list) and value and all(
        isinstance(v, str) and v for v in value)


def _check_overlaps(path, types):
    seen_events, seen_meters = {}, {}
    for rtype in types:
        for patterns in rtype.events.values():
            for pattern in patterns:
                other = seen_events.setdefault(pattern, rtype.name)
                if other != rtype.name:
                    raise DefinitionError(
                        '%s: resource type "%s": events: "%s" is also an '
                        'event of "%s"' % (path, rtype.name, pattern, other))
        for meter in list(rtype.meters) + list(rtype.usage_meters):
            other = seen_meters.setdefault(meter, rtype.name)
            if other != rtype.name:
                raise DefinitionError(
                    '%s: resource type "%s": meters: "%s" is also a meter '
                    'of "%s"' % (path, rtype.name, meter, other))
