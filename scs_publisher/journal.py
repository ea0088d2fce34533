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
"""Local fallback journal for samples the ledger could not take.

Ceilometer swallows a sample publisher's exception and acks the message, so
a sample that cannot reach the ledger must be kept here or it is gone.
Each process appends to its own file (JSON lines, fsync'd, mode 0600) and
holds an exclusive ``flock`` on it while it lives. Replay takes the own file
and any file whose lock can be taken (its process is gone), feeds the
records through the normal intake (which drops what was already accepted)
and removes them only after that commit.
"""

import fcntl
import glob
import os
import socket
import threading

from oslo_log import log

from scs_publisher import normalize

LOG = log.getLogger(__name__)

_PREFIX = 'journal-'
_REPLAY_CHUNK = 500


class Journal:
    def __init__(self, directory):
        self.directory = directory
        self._lock = threading.Lock()
        self._fd = None
        self._pid = None

    @property
    def path(self):
        return os.path.join(self.directory, '%s%s-%d.jsonl' % (
            _PREFIX, socket.gethostname(), os.getpid()))

    def _own_fd(self):
        if self._fd is None or self._pid != os.getpid():
            # After a fork the inherited descriptor is the parent's file.
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                         0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fd, self._pid = fd, os.getpid()
        return self._fd

    def append(self, records):
        data = ''.join(normalize.record_to_json(r) + '\n' for r in records)
        with self._lock:
            fd = self._own_fd()
            os.write(fd, data.encode('utf-8'))
            os.fsync(fd)

    def pending(self):
        """Whether any journal file in the directory holds records."""
        return any(os.path.getsize(p) for p in self._files())

    def _files(self):
        return glob.glob(os.path.join(self.directory, _PREFIX + '*.jsonl'))

    def replay(self, intake):
        """Move journaled records into the ledger; returns how many were
        read. Raises ``LedgerUnavailable`` (and keeps the files) when the
        ledger is still unreachable."""
        total = 0
        with self._lock:
            own = self.path if self._pid == os.getpid() else None
            for path in self._files():
                if path == own:
                    total += self._replay_file(path, intake)
                    os.ftruncate(self._fd, 0)
                    continue
                try:
                    fd = os.open(path, os.O_RDWR)
                except FileNotFoundError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)  # its process is alive and replays it
                    continue
                try:
                    if os.path.exists(path):
                        total += self._replay_file(path, intake)
                        os.unlink(path)
                finally:
                    os.close(fd)
        return total

    @staticmethod
    def _replay_file(path, intake):
        records = []
        with open(path, encoding='utf-8') as f:
            for number, line in enumerate(f, 1):
                try:
                    records.append(normalize.record_from_json(line))
                except (ValueError, TypeError):
                    # A torn last line from a crash mid-write.
                    LOG.warning('Skipping unreadable line %d of journal '
                                '%s', number, path)
        for start in range(0, len(records), _REPLAY_CHUNK):
            intake.accept(records[start:start + _REPLAY_CHUNK])
        if records:
            LOG.info('Replayed %d journaled samples from %s into the ledger',
                     len(records), path)
        return len(records)
