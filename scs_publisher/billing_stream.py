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
"""The receiving side: rebuild what was active, and when, from billing
events.

This is the algorithm the sink protocol documents for billing developers,
and what ``scs-publisher receive --summary`` and the tests use:

1. Keep events by ``id``; a second arrival changes nothing.
2. An event named by a correction's ``supersedes`` no longer holds.
3. A correction that holds stands for a fact of type ``corrects`` with the
   correction's fields, unless it is ``retracted``.
4. Per resource, the facts in force, in ``effective_at`` order, give its
   active intervals and their attributes: ``resource.started`` opens,
   ``resource.changed`` splits, ``resource.ended`` closes (an end without
   a start opens at its ``started_at`` when it has one).
"""

import collections
import dataclasses

from scs_publisher import billing

_TRAIT_FIELDS = {'resource_id', 'resource_type', 'project_id', 'user_id',
                 'started_at', 'ended_at', 'effective_at', 'recorded_at',
                 'window_start', 'window_end', 'origin', 'sequence',
                 'evidence', 'meter', 'unit', 'quantity', 'sample_count',
                 'supersedes', 'corrects', 'reason', 'retracted'}
_TIME_FIELDS = ('started_at', 'ended_at', 'effective_at', 'recorded_at',
                'window_start', 'window_end')


def from_ceilometer(item):
    """A billing event in the canonical form from its ``ceilometer`` wire
    form (traits)."""
    data = {'id': item['message_id'], 'type': item['event_type'],
            'attributes': {}}
    for name, _dtype, value in item.get('traits') or ():
        if name in _TRAIT_FIELDS:
            data[name] = value
        else:
            data['attributes'][name] = value
    if isinstance(data.get('evidence'), str):
        data['evidence'] = data['evidence'].split()
    return data


def from_cloudevent(envelope):
    """The canonical form from a CloudEvent."""
    data = dict(envelope['data'])
    data.update(id=envelope['id'], type=envelope['type'])
    return data


def from_wire(item):
    """The canonical form of a received billing event in either format;
    None for anything else (raw samples and events)."""
    if 'specversion' in item:
        if str(item.get('type', '')).startswith(billing.TYPE_PREFIX):
            return from_cloudevent(item)
        return None
    if str(item.get('event_type', '')).startswith(billing.TYPE_PREFIX):
        return from_ceilometer(item)
    return None


@dataclasses.dataclass
class Interval:
    resource_type: str
    resource_id: str
    project_id: str | None
    start: float | None
    end: float | None          # None: still active
    attributes: dict

    def seconds_within(self, begin, until):
        start = begin if self.start is None else max(self.start, begin)
        end = until if self.end is None else min(self.end, until)
        return max(0.0, end - start)


class BillingStream:
    def __init__(self):
        self.events = {}

    def add(self, event):
        """Add one event in the canonical form; False if seen before."""
        if event['id'] in self.events:
            return False
        self.events[event['id']] = event
        return True

    def facts(self):
        """The facts in force: ``(type, fields)`` with times as epoch
        seconds, type without the ``scs.billing.`` prefix."""
        superseded = {e['supersedes'] for e in self.events.values()
                      if e.get('supersedes')}
        facts = []
        for event in self.events.values():
            if event['id'] in superseded:
                continue
            kind = event['type'][len(billing.TYPE_PREFIX):]
            if kind == billing.CORRECTION:
                if event.get('retracted'):
                    continue
                kind = event['corrects']
            fields = dict(event)
            for name in _TIME_FIELDS:
                if fields.get(name) is not None:
                    fields[name] = billing.parse_time(fields[name])
            facts.append((kind, fields))
        return facts

    def intervals(self):
        """Active intervals per ``(resource_type, resource_id)``."""
        per_resource = collections.defaultdict(list)
        for kind, fields in self.facts():
            if kind in (billing.STARTED, billing.CHANGED, billing.ENDED):
                per_resource[(fields['resource_type'],
                              fields['resource_id'])].append((kind, fields))
        result = {}
        for key, facts in per_resource.items():
            order = {billing.STARTED: 0, billing.CHANGED: 1,
                     billing.ENDED: 2}
            facts.sort(key=lambda f: (f[1]['effective_at'], order[f[0]]))
            intervals, current = [], None
            for kind, fields in facts:
                at = fields['effective_at']
                if kind == billing.STARTED:
                    current = self._open(key, fields, at)
                elif kind == billing.CHANGED:
                    if current is not None:
                        current.end = at
                        intervals.append(current)
                    current = self._open(key, fields, at)
                else:
                    if current is None:
                        current = self._open(key, fields,
                                             fields.get('started_at'))
                    current.end = at
                    intervals.append(current)
                    current = None
            if current is not None:
                intervals.append(current)
            result[key] = intervals
        return result

    @staticmethod
    def _open(key, fields, at):
        return Interval(key[0], key[1], fields.get('project_id'), at, None,
                        dict(fields.get('attributes') or {}))

    def usage(self):
        """``{(resource_id, meter, window_start): fields}`` in force."""
        return {(f['resource_id'], f['meter'], f['window_start']): f
                for kind, f in self.facts() if kind == billing.USAGE}

    def summary(self, begin, until):
        """Per project: resource-hours per resource type and usage totals
        per meter (quantity x window hours) between ``begin`` and
        ``until`` (epoch seconds)."""
        projects = collections.defaultdict(lambda: {
            'resource_hours': collections.Counter(),
            'usage': collections.Counter(), 'units': {}})
        for intervals in self.intervals().values():
            for interval in intervals:
                seconds = interval.seconds_within(begin, until)
                if seconds:
                    projects[interval.project_id]['resource_hours'][
                        interval.resource_type] += seconds / 3600.0
        for fields in self.usage().values():
            if fields['window_start'] >= begin and \
                    fields['window_end'] <= until:
                project = projects[fields.get('project_id')]
                hours = (fields['window_end'] - fields['window_start']) / 3600
                project['usage'][fields['meter']] += fields['quantity'] * hours
                project['units'][fields['meter']] = fields.get('unit')
        return dict(projects)

    def span(self):
        """Earliest and latest effective time of the facts, or None."""
        times = [f['effective_at'] for _kind, f in self.facts()]
        times += [f['started_at'] for _kind, f in self.facts()
                  if f.get('started_at') is not None]
        return (min(times), max(times)) if times else None


def render_summary(summary, begin, until):
    """The per-project summary as text for a terminal."""
    lines = ['Billable from %s to %s' % (billing.isotime(begin),
                                         billing.isotime(until))]
    for project in sorted(summary, key=str):
        figures = summary[project]
        lines.append('project %s' % project)
        for rtype, hours in sorted(figures['resource_hours'].items()):
            lines.append('  %-22s %12.2f resource-hours' % (rtype, hours))
        for meter, total in sorted(figures['usage'].items()):
            unit = figures['units'].get(meter) or ''
            lines.append('  %-22s %12.6g %s-hours' % (meter, total, unit))
    return '\n'.join(lines)
