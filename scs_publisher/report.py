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
"""The demo's HTML report: one self-contained page, a timeline per
resource with what really happened and what was billed."""

import collections
import html
import os

from scs_publisher import billing

_STYLE = '''
body { font: 14px sans-serif; margin: 2em; color: #222; }
h2 { margin-top: 2em; }
.row { display: flex; align-items: center; margin: 2px 0; }
.label { width: 16em; font: 12px monospace; }
.track { position: relative; flex: 1; height: 18px; background: #f4f4f4; }
.bar { position: absolute; height: 7px; }
.truth { top: 1px; background: #9e9e9e; }
.billed { top: 10px; }
.notification { background: #1e6fd9; }
.reconciliation { background: #e8890c; }
.polling { background: #2e9d4f; }
.outage { background: #d93025; }
.tick { top: 0; width: 3px; height: 18px; opacity: .8; }
.legend span { display: inline-block; width: 1em; height: .8em;
               margin: 0 .3em 0 1em; }
table { border-collapse: collapse; }
td, th { padding: 2px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
'''


def write(path, scenario, stream, outage):
    """Write the report to ``path``; returns its absolute path."""
    begin, until = scenario.begin, scenario.horizon
    intervals = stream.intervals()
    facts = collections.defaultdict(list)
    for kind, fields in stream.facts():
        if kind in (billing.STARTED, billing.CHANGED, billing.ENDED):
            facts[fields['resource_id']].append((kind, fields))
    parts = ['<!DOCTYPE html><html><head><meta charset="utf-8">',
             '<title>scs_publisher demo</title><style>%s</style></head>'
             % _STYLE, '<body><h1>scs_publisher demo</h1>',
             '<p>%d resources over %s to %s. %d notifications were dropped '
             'and %d duplicated before they reached the agent; the sink '
             'refused the first %d deliveries (an outage), which were '
             'retried.</p>' % (
                 len(scenario.truth), billing.isotime(begin),
                 billing.isotime(until), scenario.dropped,
                 scenario.duplicated, outage.failed),
             '<p class="legend">Upper bar: what really existed'
             '<span class="truth"></span> Lower bar: what was billed, '
             'coloured by how its start was known; ticks: each fact '
             '(start, change, end) by how it was known: notification<span '
             'class="notification"></span> polling<span class="polling">'
             '</span> reconciliation<span class="reconciliation"></span>. '
             'Hover for times and attributes.</p>']
    parts.append(_deliveries(outage.deliveries))
    by_project = collections.defaultdict(list)
    for truth in scenario.truth.values():
        by_project[truth.project_id].append(truth)
    for project in sorted(by_project):
        parts.append('<h2>Project %s</h2>' % html.escape(project))
        for truth in sorted(by_project[project],
                            key=lambda t: (t.resource_type, t.start)):
            key = (truth.resource_type, truth.resource_id)
            parts.append(_row(truth, intervals.get(key, []),
                              facts[truth.resource_id], begin, until))
    parts.append('</body></html>')
    path = os.path.abspath(path)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(parts))
    return path


def _deliveries(deliveries):
    """The sink's side, in wall-clock time: every delivery, refused ones
    (the outage) in red."""
    if not deliveries:
        return ''
    first, last = deliveries[0][0], deliveries[-1][0]
    span = max(last - first, 1e-3)
    marks = ''.join(
        '<div class="bar %s" style="left:%.3f%%;width:0.4%%;top:1px;'
        'height:16px" title="%s"></div>' % (
            'notification' if accepted else 'outage',
            (at - first) / span * 99, 'accepted' if accepted else
            'refused (503), retried') for at, accepted in deliveries)
    return ('<h2>Deliveries to the sink</h2><p>%d deliveries in %.1f s of '
            'the run, %d refused during the outage (red) and retried.</p>'
            '<div class="row"><div class="label">billing sink</div>'
            '<div class="track">%s</div></div>'
            % (len(deliveries), span, sum(1 for _t, ok in deliveries
                                          if not ok), marks))


def _bar(css, start, end, begin, until, title):
    start = max(start if start is not None else begin, begin)
    end = min(end if end is not None else until, until)
    left = (start - begin) / (until - begin) * 100
    width = max(0.2, (end - start) / (until - begin) * 100)
    return ('<div class="bar %s" style="left:%.3f%%;width:%.3f%%" '
            'title="%s"></div>' % (css, left, width, html.escape(title)))


def _tick(kind, fields, begin, until):
    at = fields['effective_at']
    left = (min(max(at, begin), until) - begin) / (until - begin) * 100
    return ('<div class="bar tick %s" style="left:%.3f%%" title="%s"></div>'
            % (fields['origin'], left, html.escape('%s at %s, from %s' % (
                kind, billing.isotime(at), fields['origin']))))


def _row(truth, billed, facts, begin, until):
    # Billed bars are coloured by how the start was known.
    origin = next((fields['origin'] for kind, fields in facts
                   if kind == billing.STARTED), None)
    label = '%s %s' % (truth.resource_type, truth.resource_id[:8])
    bars = [_bar('truth', truth.start, truth.end, begin, until,
                 'existed %s to %s' % (billing.isotime(truth.start),
                                       billing.isotime(truth.end)
                                       or 'the end'))]
    for interval in billed:
        bars.append(_bar('billed %s' % (origin or 'reconciliation'),
                         interval.start, interval.end, begin, until,
                         'billed %s to %s: %s' % (
                             billing.isotime(interval.start),
                             billing.isotime(interval.end) or 'the end',
                             ', '.join('%s=%s' % item for item in sorted(
                                 interval.attributes.items())))))
    bars += [_tick(kind, fields, begin, until) for kind, fields in facts]
    return ('<div class="row"><div class="label">%s</div>'
            '<div class="track">%s</div></div>'
            % (html.escape(label), ''.join(bars)))
