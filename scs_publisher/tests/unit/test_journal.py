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

import fcntl
import os
import stat

import sqlalchemy as sa

from scs_publisher import intake as intake_mod
from scs_publisher import journal as journal_mod
from scs_publisher import ledger as ledger_mod
from scs_publisher import normalize
from scs_publisher.tests import base


class JournalTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = os.path.join(self.tmp, 'state')
        self.journal = journal_mod.Journal(self.dir)
        self.ledger = ledger_mod.Ledger(self.sqlite_url())
        self.addCleanup(self.ledger.dispose)
        self.intake = intake_mod.Intake(self.ledger)

    def outbox_ids(self):
        with self.ledger.begin() as conn:
            return [r.item_id for r in conn.execute(
                sa.select(ledger_mod.outbox).order_by(ledger_mod.outbox.c.id))]

    def test_append_is_private_and_replay_empties_it(self):
        self.journal.append([base.record('a'), base.record('b')])
        self.assertTrue(self.journal.pending())
        self.assertEqual(0o600, stat.S_IMODE(os.stat(self.journal.path)
                                             .st_mode))
        self.assertEqual(2, self.journal.replay(self.intake))
        self.assertFalse(self.journal.pending())
        self.assertEqual(['a', 'b'], self.outbox_ids())
        # Appending after a replay goes on working.
        self.journal.append([base.record('c')])
        self.journal.replay(self.intake)
        self.assertEqual(['a', 'b', 'c'], self.outbox_ids())

    def test_failed_replay_keeps_the_records(self):
        self.journal.append([base.record('a')])
        broken = intake_mod.Intake(ledger_mod.Ledger('sqlite:///' + self.dir))
        self.assertRaises(ledger_mod.LedgerUnavailable, self.journal.replay,
                          broken)
        self.assertTrue(self.journal.pending())

    def test_orphaned_journal_of_a_dead_process_is_replayed(self):
        os.makedirs(self.dir)
        orphan = os.path.join(self.dir, 'journal-otherhost-4242.jsonl')
        with open(orphan, 'w') as f:
            f.write(normalize.record_to_json(base.record('x')) + '\n')
            f.write('{"torn line from a cra')
        self.assertEqual(1, self.journal.replay(self.intake))
        self.assertFalse(os.path.exists(orphan))
        self.assertEqual(['x'], self.outbox_ids())

    def test_journal_of_a_live_process_is_left_alone(self):
        os.makedirs(self.dir)
        theirs = os.path.join(self.dir, 'journal-otherhost-4243.jsonl')
        with open(theirs, 'w') as f:
            f.write(normalize.record_to_json(base.record('y')) + '\n')
        fd = os.open(theirs, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        # flock locks belong to the open file: this one stands for the
        # other process holding its journal.
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.assertEqual(0, self.journal.replay(self.intake))
        self.assertTrue(os.path.exists(theirs))
