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
"""Shared test helpers: temporary state, configurations, services."""

import os
import shutil
import socket
import tempfile
import time
import uuid

from oslo_config import cfg
import testtools

from scs_publisher import normalize

# Ceilometer's prepare_service() sets up logging for the whole process; a
# log file that outlives every test keeps later tests from writing to a
# deleted directory.
LOG_FILE = os.path.join(tempfile.gettempdir(),
                        'scs-publisher-tests-%d.log' % os.getpid())

RABBIT_URL = 'rabbit://guest:guest@127.0.0.1:5672/'
MYSQL_URL = 'mysql+pymysql://root@127.0.0.1:3306/test'
POSTGRES_URL = 'postgresql+psycopg://postgres@127.0.0.1:5432/test'


def in_ci():
    return os.environ.get('CI', '').lower() == 'true'


def require_port(test, port, what):
    """Skip ``test`` when nothing listens on 127.0.0.1:``port``, except in
    CI, where the service must be there and its absence is a failure."""
    try:
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
    except OSError as exc:
        message = '%s is not reachable on 127.0.0.1:%d (%s)' % (
            what, port, exc)
        if in_ci():
            test.fail(message + '; CI must provide it')
        test.skipTest(message)


def wait_until(predicate, timeout, interval=0.02, message='condition'):
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %.0f s waiting for %s'
                                 % (timeout, message))
        time.sleep(interval)


def record(key=None, content='raw', kind='event',
           event_type='volume.create.end', project_id='p1', payload=None):
    key = key or uuid.uuid4().hex
    return normalize.Record(
        dedup_key=key, content=content, kind=kind, item_id=key,
        event_type=event_type, project_id=project_id,
        payload=payload or '{"message_id": "%s"}' % key)


class TestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='scs-test-')
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write_conf(self, text, name='ceilometer.conf'):
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def make_conf(self, text=''):
        """An oslo.config object reading ``text`` (with state_path set to
        this test's directory unless the text sets it)."""
        if 'state_path' not in text:
            text = '[scs_publisher]\nstate_path = %s\n%s' % (self.tmp, text)
            text = text.replace('[scs_publisher]\nstate_path = %s\n'
                                '[scs_publisher]\n' % self.tmp,
                                '[scs_publisher]\nstate_path = %s\n'
                                % self.tmp)
        conf = cfg.ConfigOpts()
        conf([], default_config_files=[self.write_conf(text)])
        return conf

    def sqlite_url(self, name='ledger.sqlite'):
        return 'sqlite:///' + os.path.join(self.tmp, name)


def _server_url(backend):
    return {'mysql': MYSQL_URL, 'postgresql': POSTGRES_URL}[backend]


class BackendMixin:
    """Runs a test case against one ledger backend.

    ``backend`` is ``sqlite`` (a file in the test directory), ``mysql``
    (the MariaDB server on 127.0.0.1:3306) or ``postgresql`` (127.0.0.1:5432);
    for the servers each test gets a database of its own, dropped after.
    """
    backend = 'sqlite'

    def ledger_url(self):
        if self.backend == 'sqlite':
            return self.sqlite_url()
        import sqlalchemy as sa
        port = 3306 if self.backend == 'mysql' else 5432
        require_port(self, port, self.backend)
        name = 'scs_test_%s' % uuid.uuid4().hex[:12]
        admin = sa.create_engine(_server_url(self.backend),
                                 isolation_level='AUTOCOMMIT')
        with admin.connect() as conn:
            conn.exec_driver_sql('CREATE DATABASE %s' % name)

        def drop():
            with admin.connect() as conn:
                if self.backend == 'postgresql':
                    conn.exec_driver_sql('DROP DATABASE IF EXISTS %s WITH '
                                         '(FORCE)' % name)
                else:
                    conn.exec_driver_sql('DROP DATABASE IF EXISTS %s' % name)
            admin.dispose()
        self.addCleanup(drop)
        return _server_url(self.backend).rsplit('/', 1)[0] + '/' + name
