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
"""The intake step: one ledger transaction per batch of records.

It drops records whose key was seen before, remembers the new keys and
appends the new records to the outbox, all in one commit, so a record is
either fully accepted or not at all.
"""

import time

import sqlalchemy as sa

from scs_publisher import ledger as ledger_mod

# Bounds the size of the IN (...) list of one dedup query.
_KEY_CHUNK = 500


class IntakeResult:
    __slots__ = ('accepted', 'duplicates')

    def __init__(self, accepted=0, duplicates=0):
        self.accepted = accepted
        self.duplicates = duplicates


class Intake:
    def __init__(self, ledger):
        self.ledger = ledger

    @ledger_mod.translate_errors
    def accept(self, records, quarantined=()):
        """Commit ``records`` (deduplicated) and ``quarantined`` entries.

        :param quarantined: ``(kind, reason, excerpt)`` tuples.
        :returns: :class:`IntakeResult`
        :raises LedgerUnavailable: nothing was committed.
        """
        now = time.time()
        with self.ledger.begin() as conn:
            self.ledger.lock_outbox(conn)
            fresh = self._drop_seen(conn, records)
            if fresh:
                conn.execute(sa.insert(ledger_mod.intake_keys), [
                    {'key': r.dedup_key, 'seen_at': now} for r in fresh])
                conn.execute(sa.insert(ledger_mod.outbox), [
                    {'content': r.content, 'kind': r.kind,
                     'item_id': r.item_id, 'event_type': r.event_type,
                     'project_id': r.project_id, 'created_at': now,
                     'payload': r.payload} for r in fresh])
            if quarantined:
                conn.execute(sa.insert(ledger_mod.quarantine), [
                    {'kind': kind, 'reason': reason,
                     'excerpt': excerpt, 'quarantined_at': now}
                    for kind, reason, excerpt in quarantined])
        return IntakeResult(len(fresh), len(records) - len(fresh))

    @staticmethod
    def _drop_seen(conn, records):
        keys = ledger_mod.intake_keys.c.key
        seen = set()
        wanted = list({r.dedup_key for r in records})
        for start in range(0, len(wanted), _KEY_CHUNK):
            chunk = wanted[start:start + _KEY_CHUNK]
            seen.update(conn.execute(
                sa.select(keys).where(keys.in_(chunk))).scalars())
        fresh = []
        for record in records:
            if record.dedup_key not in seen:
                # Also drops a duplicate inside the same batch.
                seen.add(record.dedup_key)
                fresh.append(record)
        return fresh
