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

It appends the records to the outbox, where a record whose dedup key is
already there inserts nothing, in one commit, so a record is either fully
accepted or not at all. It runs once per notification, so it
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
                # The unique dedup_key makes this insert nothing for an item
                # accepted before, in an earlier call or in this one.
                insert = sql.insert_outbox
                cursor.execute(insert.sql, insert.params({
                    'dedup_key': record.dedup_key, 'content': record.content,
                    'kind': record.kind, 'item_id': record.item_id,
                    'event_type': record.event_type,
                    'project_id': record.project_id, 'created_at': now,
                    'payload': record.payload}))
                if cursor.rowcount == 1:
                    fresh.append(record)
            if quarantined:
                cursor.executemany(sql.insert_quarantine.sql, [
                    sql.insert_quarantine.params({
                        'kind': kind, 'reason': reason, 'excerpt': excerpt,
                        'quarantined_at': now})
                    for kind, reason, excerpt in quarantined])
        return IntakeResult(len(fresh), len(records) - len(fresh))
