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
either fully accepted or not at all. It runs once per notification, so it
uses the ledger's precompiled statements (see ``Ledger.raw_transaction``).
"""

import time


class IntakeResult:
    __slots__ = ('accepted', 'duplicates')

    def __init__(self, accepted=0, duplicates=0):
        self.accepted = accepted
        self.duplicates = duplicates


class Intake:
    def __init__(self, ledger):
        self.ledger = ledger

    def accept(self, records, quarantined=()):
        """Commit ``records`` (deduplicated) and ``quarantined`` entries.

        :param quarantined: ``(kind, reason, excerpt)`` tuples.
        :returns: :class:`IntakeResult`
        :raises LedgerUnavailable: nothing was committed.
        """
        now = time.time()
        sql = self.ledger.statements
        fresh = []
        with self.ledger.raw_transaction() as cursor:
            for record in records:
                # The key insert is the dedup check: it inserts nothing if
                # the key is there, from an earlier call or this batch.
                cursor.execute(sql.insert_key.sql, sql.insert_key.params(
                    {'key': record.dedup_key, 'seen_at': now}))
                if cursor.rowcount == 1:
                    fresh.append(record)
            if fresh:
                cursor.executemany(sql.insert_outbox.sql, [
                    sql.insert_outbox.params({
                        'content': r.content, 'kind': r.kind,
                        'item_id': r.item_id, 'event_type': r.event_type,
                        'project_id': r.project_id, 'created_at': now,
                        'payload': r.payload}) for r in fresh])
            if quarantined:
                cursor.executemany(sql.insert_quarantine.sql, [
                    sql.insert_quarantine.params({
                        'kind': kind, 'reason': reason, 'excerpt': excerpt,
                        'quarantined_at': now})
                    for kind, reason, excerpt in quarantined])
        return IntakeResult(len(fresh), len(records) - len(fresh))
