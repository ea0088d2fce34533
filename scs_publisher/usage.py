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
"""Usage windows: fast-changing meters billed as windowed totals. No I/O.

Samples of a usage meter (object storage bytes, say) fall into fixed
windows of event time (``window`` seconds, aligned to the epoch, so one
hour means every clock hour). A window is finalized ``usage_grace``
seconds after it closed: one ``usage`` event with the **time-weighted
mean** of the meter over the window (each sample's value holds until the
next sample; before the first sample of the window, the first value
holds), the unit and the number of samples. A sample that arrives for a
finalized window makes a ``correction`` of that usage event.

The mean times the window's length is the integral a provider bills from,
e.g. byte-hours: ``quantity * (window_end - window_start) / 3600``.
"""

import dataclasses
import json

from scs_publisher import billing


@dataclasses.dataclass
class UsageWindow:
    resource_type: str
    resource_id: str
    meter: str
    window_start: float
    window_end: float
    unit: str | None = None
    project_id: str | None = None
    user_id: str | None = None
    #: ``[at, volume, evidence]``, in arrival order.
    samples: list = dataclasses.field(default_factory=list)
    #: Id of the usage event (or its latest correction) in force.
    live: str | None = None
    sig: list | None = None

    @property
    def finalized(self):
        return self.live is not None


def bounds(at, length):
    """The ``(start, end)`` of the window of ``length`` seconds holding
    ``at``."""
    start = (at // length) * length
    return start, start + length


def add_sample(window, at, volume, evidence):
    """Add a sample; False if the window holds one at that time already
    (the same value polled twice)."""
    if any(s[0] == at for s in window.samples):
        return False
    window.samples.append([at, volume, evidence])
    return True


def quantity(window):
    """Time-weighted mean over the window, or None without samples."""
    samples = sorted(window.samples)
    if not samples:
        return None
    total = 0.0
    for index, (at, volume, _evidence) in enumerate(samples):
        begin = window.window_start if index == 0 else at
        end = samples[index + 1][0] if index + 1 < len(samples) \
            else window.window_end
        total += volume * (end - begin)
    return total / (window.window_end - window.window_start)


def is_due(window, now, settings):
    return now >= window.window_end + settings.usage_grace


def finalize(window, state, settings, now):
    """The usage event for a closed window, or the correction of the one
    sent before if late samples changed it; [] if nothing changed.

    ``state`` is the resource's :class:`reconcile.ResourceState`, which
    numbers the resource's events.
    """
    value = quantity(window)
    if value is None:
        return []
    value = round(value, 6)
    sig = [value, len(window.samples)]
    if window.sig == sig:
        return []
    usage_id = billing.event_id(
        settings.source, window.resource_type, window.resource_id, 'usage',
        window.meter, billing.isotime(window.window_start))
    extra = {}
    if window.live is None:
        event_id, event_type = usage_id, billing.USAGE
    else:
        event_id = billing.event_id(
            settings.source, window.resource_type, window.resource_id,
            'correction', window.live, json.dumps(sig))
        event_type = billing.CORRECTION
        extra = {'supersedes': window.live, 'corrects': billing.USAGE,
                 'reason': billing.REASON_LATE_SAMPLE}
    state.sequence += 1
    event = billing.BillingEvent(
        id=event_id, type=event_type, resource_id=window.resource_id,
        resource_type=window.resource_type,
        project_id=window.project_id or state.project_id,
        user_id=window.user_id or state.user_id,
        effective_at=window.window_end, recorded_at=now,
        origin=billing.ORIGIN_POLLING, sequence=state.sequence,
        evidence=[s[2] for s in sorted(window.samples)][-20:],
        meter=window.meter, unit=window.unit, quantity=value,
        window_start=window.window_start, window_end=window.window_end,
        sample_count=len(window.samples), **extra)
    window.live, window.sig = event_id, sig
    return [event]
