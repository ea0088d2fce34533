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
"""The reconciler: observations in, billing events out. No I/O.

Per resource it keeps a short **timeline** of the observations that
matter (creates, updates, deletes; polled sightings that told something
new; inferred absences). After each observation it derives the lifecycle
from the timeline *sorted by event time* and compares the result with the
facts it already emitted:

* a fact not emitted yet is emitted;
* a fact emitted with other content, or no longer derived, is superseded
  by a ``correction`` (paired with the fact that replaces it, or
  ``retracted``).

Because the derivation depends only on the set of observations, not on
their arrival order, a delete before its create, a resize before its
create or the same create three times all end with the same facts; and
because a fact's id depends only on what it says (see
:func:`billing.event_id`), two processes deriving it give it one id.

Facts inferred from polling wait ``settle`` seconds (of processing time)
before they are emitted: a sample and the notification it came with travel
separately, and a create notification usually arrives moments after the
first sighting. Notification facts are emitted at once.
"""

import dataclasses
import json

from scs_publisher import billing

CREATE = 'create'
UPDATE = 'update'
DELETE = 'delete'
SEEN = 'seen'
ABSENT = 'absent'

# Same event time: a create comes first, a delete last.
_STEP_ORDER = {CREATE: 0, UPDATE: 1, SEEN: 2, ABSENT: 3, DELETE: 4}

ABSENCE_END_LAST_SEEN = 'last_seen'
ABSENCE_END_FIRST_MISSED = 'first_missed'


@dataclasses.dataclass(frozen=True)
class Settings:
    source: str = 'RegionOne'
    #: Seconds a polling-inferred fact waits for the notification that
    #: would make it unnecessary.
    settle: float = 300.0
    #: Consecutive complete inventory cycles a resource must be missing
    #: from before it is ended.
    absence_cycles: int = 2
    #: Effective time of an end inferred from absence.
    absence_end: str = ABSENCE_END_LAST_SEEN
    #: Seconds after a usage window's end before it is finalized.
    usage_grace: float = 900.0


@dataclasses.dataclass
class Observation:
    """What one notification or sample says about one resource."""
    resource_type: str
    resource_id: str
    step: str                    # CREATE, UPDATE, DELETE or SEEN
    at: float                    # event time
    origin: str                  # billing.ORIGIN_NOTIFICATION / _POLLING
    evidence: str                # message id or sample id
    project_id: str | None = None
    user_id: str | None = None
    attributes: dict = dataclasses.field(default_factory=dict)
    started_hint: float | None = None   # created_at / launched_at
    ended_hint: float | None = None     # deleted_at


@dataclasses.dataclass
class ResourceState:
    resource_type: str
    resource_id: str
    project_id: str | None = None
    user_id: str | None = None
    attributes: dict = dataclasses.field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    last_seen: float | None = None       # by polling
    last_absent_at: float | None = None  # last complete cycle without it
    missed_since: float | None = None    # first cycle of the current run
    misses: int = 0
    sequence: int = 0
    timeline: list = dataclasses.field(default_factory=list)
    #: fact id -> {type, live (id of the event in force), sig, at, origin}
    emitted: dict = dataclasses.field(default_factory=dict)
    #: When facts held back for ``settle`` become due (processing time).
    review_at: float | None = None

    @property
    def active(self):
        return self.started_at is not None and self.ended_at is None


@dataclasses.dataclass
class Fact:
    type: str
    effective_at: float
    attributes: dict
    origin: str
    evidence: list
    ripe_at: float
    started_at: float | None = None
    ended_at: float | None = None

    def signature(self):
        if self.type == billing.ENDED:
            return [self.effective_at]
        return [self.effective_at,
                json.dumps(self.attributes, sort_keys=True)]


def _entry(obs, now):
    return {'step': obs.step, 'at': obs.at, 'origin': obs.origin,
            'ev': obs.evidence, 'attrs': dict(obs.attributes),
            'start': obs.started_hint, 'end': obs.ended_hint, 'rec': now}


def _same_entry(a, b):
    return all(a[k] == b[k] for k in ('step', 'at', 'attrs', 'start', 'end'))


def _ripe_at(entry, settings):
    if entry['origin'] == billing.ORIGIN_NOTIFICATION:
        return 0.0  # always: notifications are what is waited for
    return entry['rec'] + settings.settle


def _fact_origin(entry):
    """Facts told by a notification keep that origin; a start or end
    inferred from polling or absence is ``reconciliation``."""
    if entry['origin'] == billing.ORIGIN_NOTIFICATION:
        return billing.ORIGIN_NOTIFICATION
    return billing.ORIGIN_RECONCILIATION


def derive(timeline, settings, required=frozenset()):
    """The lifecycle facts a timeline proves, in event-time order.

    :param required: attributes the resource type's start must tell;
        until they are known (a snapshot's size comes with a sample, not
        with its notification), the start waits ``settle`` for them.
    """
    entries = sorted(timeline, key=lambda e: (e['at'], _STEP_ORDER[e['step']]))
    start_entry, start = _start(entries)
    end_entry, end = _end(entries)
    if start is not None and end is not None and start > end:
        start = end  # clocks disagree; never bill a negative interval
    facts, attrs = [], {}
    if start_entry is not None:
        facts, attrs = _started_and_changes(entries, start_entry, start, end,
                                            settings, required)
    if end_entry is not None:
        facts.append(Fact(billing.ENDED, end, dict(attrs),
                          _fact_origin(end_entry), [end_entry['ev']],
                          _ripe_at(end_entry, settings), started_at=start,
                          ended_at=end))
    return facts


def _start(entries):
    """A create notification's start; else the earliest creation time any
    observation carries; else the first sighting."""
    creates = [e for e in entries if e['step'] == CREATE]
    if creates:
        entry = min(creates, key=lambda e: e['start'] or e['at'])
        return entry, entry['start'] or entry['at']
    hinted = [e for e in entries if e['start'] is not None]
    if hinted:
        entry = min(hinted, key=lambda e: e['start'])
        return entry, entry['start']
    for entry in entries:
        if entry['step'] in (UPDATE, SEEN):
            return entry, entry['at']
    return None, None


def _end(entries):
    """A delete notification's end; else an absence no later sighting
    contradicts."""
    deletes = [e for e in entries if e['step'] == DELETE]
    if deletes:
        entry = min(deletes, key=lambda e: e['end'] or e['at'])
        return entry, entry['end'] or entry['at']
    seen = [e['at'] for e in entries if e['step'] == SEEN]
    for absent in (e for e in entries if e['step'] == ABSENT):
        if any(at >= absent.get('detected', absent['at']) for at in seen):
            continue  # listed again after it was missed: it is back
        # A sighting from before the cycles that missed it, arriving
        # late, moves the end to it.
        return absent, max([absent['at']] + seen)
    return None, None


def _started_and_changes(entries, start_entry, start, end, settings,
                         required):
    """The ``started`` fact and the ``changed`` facts after it; and the
    attributes in force at the end."""
    # Attributes at the start: the create's, else the first known.
    source = start_entry if start_entry['attrs'] else next(
        (e for e in entries if e['attrs'] and e['step'] != DELETE),
        start_entry)
    attrs = dict(source['attrs'])
    started = Fact(billing.STARTED, start, dict(attrs), _fact_origin(
        start_entry), _evidence(start_entry, source),
        max(_ripe_at(start_entry, settings), _ripe_at(source, settings)),
        started_at=start)
    known = set(attrs)
    for entry in entries:
        if end is None or entry['at'] <= end:
            known.update(entry['attrs'])
    if not required <= known:
        started.ripe_at = max(started.ripe_at,
                              start_entry['rec'] + settings.settle)
    facts = [started]
    for entry in entries:
        if entry['step'] not in (UPDATE, SEEN) or entry is source:
            continue
        if end is not None and entry['at'] > end:
            break
        changed = {}
        for key, value in entry['attrs'].items():
            if key not in attrs:
                # A meter telling an attribute not known yet adds to what
                # is known; it is no change.
                started.attributes[key] = value
            elif attrs[key] != value:
                changed[key] = value
        if changed and entry['step'] == SEEN and _told_soon_after(
                entry, changed, entries, settings.settle):
            # The sample saw a change under way (cinder's resize.start
            # already carries the new size); the notification that
            # completes it tells when it took effect.
            continue
        attrs.update(entry['attrs'])
        if not changed:
            continue
        if entry['at'] <= start:
            started.attributes.update(changed)
            continue
        facts.append(Fact(billing.CHANGED, entry['at'], dict(attrs),
                          entry['origin'], [entry['ev']],
                          _ripe_at(entry, settings), started_at=start))
    return facts, attrs


def _told_soon_after(sighting, changed, entries, window):
    """Whether a notification up to ``window`` seconds after ``sighting``
    tells the same new attribute values."""
    for entry in entries:
        if entry['origin'] == billing.ORIGIN_NOTIFICATION and \
                entry['step'] in (CREATE, UPDATE) and \
                sighting['at'] <= entry['at'] <= sighting['at'] + window \
                and all(entry['attrs'].get(k) == v
                        for k, v in changed.items()):
            return True
    return False


def _evidence(*entries):
    seen = []
    for entry in entries:
        if entry['ev'] not in seen:
            seen.append(entry['ev'])
    return seen


class Reconciler:
    """Applies observations to resource states; returns billing events.

    :param settings: :class:`Settings`.
    """

    def __init__(self, settings, required_attributes=None):
        self.settings = settings
        #: resource type -> attribute names a start must tell.
        self.required = required_attributes or {}

    def derive(self, state):
        return derive(state.timeline, self.settings,
                      self.required.get(state.resource_type, frozenset()))

    def fact_id(self, state, fact):
        return billing.event_id(self.settings.source, state.resource_type,
                                state.resource_id, fact.type.split('.')[-1],
                                billing.isotime(fact.effective_at))

    # -- observations --------------------------------------------------

    def observe(self, state, obs, now):
        """Apply one observation; returns the billing events it causes."""
        if obs.project_id and (state.project_id is None or obs.origin ==
                               billing.ORIGIN_NOTIFICATION):
            state.project_id = obs.project_id
        if obs.user_id and (state.user_id is None or obs.origin ==
                            billing.ORIGIN_NOTIFICATION):
            state.user_id = obs.user_id
        if obs.step == SEEN:
            self.record_sighting(state, obs.at)
        entry = _entry(obs, now)
        if any(_same_entry(entry, e) for e in state.timeline):
            return []
        before = self.derive(state) if obs.step == SEEN else None
        state.timeline.append(entry)
        after = self.derive(state)
        if obs.step == SEEN and _same_facts(before, after):
            # Nothing new: the sighting is remembered as last_seen only,
            # so a resource polled every few minutes keeps a short
            # timeline.
            state.timeline.pop()
            return []
        return self.settle(state, now, after)

    def is_routine_sighting(self, state, obs):
        """True if ``obs`` only confirms what ``state`` knows: an active
        resource with nothing held back, seen again with its current
        attributes, no earlier than it was last seen. The caller may then
        record the sighting with :meth:`record_sighting` instead of loading
        the whole state."""
        return (obs.step == SEEN and state.active
                and state.review_at is None
                and (state.last_seen is None or obs.at >= state.last_seen)
                and all(state.attributes.get(k) == v
                        for k, v in obs.attributes.items()))

    def record_sighting(self, state, at):
        """Polling saw the resource at ``at``."""
        state.last_seen = at if state.last_seen is None else max(
            state.last_seen, at)
        if state.last_absent_at is None or at > state.last_absent_at:
            state.misses = 0
            state.missed_since = None

    def absent(self, state, cycle_id, cycle_started, now):
        """``state``'s resource was missing from a complete inventory cycle
        that began listing at ``cycle_started``."""
        state.misses += 1
        state.last_absent_at = max(state.last_absent_at or cycle_started,
                                   cycle_started)
        if state.missed_since is None:
            state.missed_since = cycle_started
        if state.misses < self.settings.absence_cycles:
            return []
        if self.settings.absence_end == ABSENCE_END_FIRST_MISSED:
            end = state.missed_since
        else:
            end = max([state.last_seen or 0] + [
                e['at'] for e in state.timeline if e['step'] != ABSENT])
        if any(e['step'] == ABSENT and e['at'] == end
               for e in state.timeline):
            return []
        state.timeline.append({
            'step': ABSENT, 'at': end, 'detected': cycle_started,
            'origin': billing.ORIGIN_RECONCILIATION, 'ev': cycle_id,
            'attrs': {}, 'start': None, 'end': None, 'rec': now})
        return self.settle(state, now)

    # -- comparing derived and emitted facts ---------------------------

    def settle(self, state, now, facts=None):
        """Emit what the timeline proves and was not emitted, correct what
        was emitted and is proved otherwise now. Facts inferred from
        polling are held until ripe (see :attr:`Settings.settle`).

        :param facts: ``derive(state)``, if the caller has it already.
        """
        if facts is None:
            facts = self.derive(state)
        self._summarize(state, facts)
        ripe = {}
        waiting_types = set()
        review = None
        for fact in facts:
            fid = self.fact_id(state, fact)
            # A fact emitted before stays in force while it is held back
            # again (another process may have recorded its evidence a
            # moment "later" than this one's clock).
            if fact.ripe_at <= now or fid in state.emitted:
                ripe[fid] = fact
            else:
                waiting_types.add(fact.type)
                review = fact.ripe_at if review is None else min(
                    review, fact.ripe_at)
        state.review_at = review

        events = []
        new = [fid for fid in ripe if fid not in state.emitted]
        for fid, fact in ripe.items():
            old = state.emitted.get(fid)
            if old is not None and old['sig'] != fact.signature():
                events.append(self._correct(state, fid, old, fact, now))
        gone = sorted((fid for fid in state.emitted if fid not in ripe),
                      key=lambda fid: state.emitted[fid]['at'])
        for fid in gone:
            old = state.emitted[fid]
            same_type = [n for n in new if ripe[n].type == old['type']]
            if same_type:
                replacement = min(same_type, key=lambda n: abs(
                    ripe[n].effective_at - old['at']))
                new.remove(replacement)
                del state.emitted[fid]
                events.append(self._correct(
                    state, replacement, old, ripe[replacement], now))
            elif old['type'] in waiting_types:
                continue  # its replacement is being held back
            else:
                del state.emitted[fid]
                events.append(self._retract(state, old, now))
        for fid in sorted(new, key=lambda n: ripe[n].effective_at):
            fact = ripe[fid]
            event = self._event(state, fid, fact, now)
            state.emitted[fid] = {'type': fact.type, 'live': fid,
                                  'sig': fact.signature(),
                                  'at': fact.effective_at,
                                  'origin': fact.origin}
            events.append(event)
        return events

    def _summarize(self, state, facts):
        state.started_at = state.ended_at = None
        for fact in facts:
            if fact.type == billing.STARTED:
                state.started_at = fact.effective_at
            elif fact.type == billing.ENDED:
                state.ended_at = fact.effective_at
            state.attributes = fact.attributes

    def _event(self, state, fid, fact, now, **extra):
        state.sequence += 1
        fields = dict(
            id=fid, type=fact.type, resource_id=state.resource_id,
            resource_type=state.resource_type,
            project_id=state.project_id, user_id=state.user_id,
            effective_at=fact.effective_at, recorded_at=now,
            origin=fact.origin, sequence=state.sequence,
            attributes=dict(fact.attributes), evidence=list(fact.evidence),
            started_at=fact.started_at, ended_at=fact.ended_at)
        fields.update(extra)
        return billing.BillingEvent(**fields)

    def _correct(self, state, fid, old, fact, now):
        reason = _reason(old, fact)
        correction_id = billing.event_id(
            self.settings.source, state.resource_type, state.resource_id,
            'correction', old['live'], json.dumps(fact.signature()))
        event = self._event(state, correction_id, fact, now,
                            type=billing.CORRECTION,
                            supersedes=old['live'], corrects=fact.type,
                            reason=reason)
        state.emitted[fid] = {'type': fact.type, 'live': correction_id,
                              'sig': fact.signature(),
                              'at': fact.effective_at,
                              'origin': fact.origin}
        return event

    def _retract(self, state, old, now):
        if old['type'] == billing.ENDED and \
                old['origin'] == billing.ORIGIN_RECONCILIATION:
            reason = billing.REASON_REAPPEARED
        else:
            reason = billing.REASON_OUT_OF_ORDER
        correction_id = billing.event_id(
            self.settings.source, state.resource_type, state.resource_id,
            'correction', old['live'], 'retracted')
        fact = Fact(old['type'], old['at'], {}, billing.ORIGIN_RECONCILIATION,
                    [], now)
        return self._event(state, correction_id, fact, now,
                           type=billing.CORRECTION, supersedes=old['live'],
                           corrects=old['type'], reason=reason,
                           retracted=True)


def _reason(old, fact):
    if fact.origin == billing.ORIGIN_NOTIFICATION:
        if old['origin'] != billing.ORIGIN_NOTIFICATION:
            return billing.REASON_LATE_NOTIFICATION
        return billing.REASON_OUT_OF_ORDER
    return billing.REASON_DRIFT


def _same_facts(a, b):
    return [(f.type, f.effective_at, f.attributes, f.origin) for f in a] == \
        [(f.type, f.effective_at, f.attributes, f.origin) for f in b]
