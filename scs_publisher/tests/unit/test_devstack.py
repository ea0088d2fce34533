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
"""The DevStack plugin, as far as it runs without DevStack: its phases run
by bash against copies of Ceilometer's default pipeline and polling files,
with DevStack's helper functions stubbed (``iniset`` writes a real INI file,
the others record their calls); the files it writes are checked, and the
configuration passes ``scs-publisher check-config``."""

import configparser
import os
import shutil
import subprocess
import sys

import ceilometer
import yaml

from scs_publisher.tests import base

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
CEILOMETER_DATA = os.path.join(os.path.dirname(ceilometer.__file__),
                               'pipeline', 'data')
PACKAGED_POLLING = os.path.join(sys.prefix, 'etc', 'ceilometer',
                                'polling.yaml')

STUBS = r'''
function is_service_enabled {
    local service
    for service in "$@"; do
        [[ " $ENABLED_SERVICES " == *" $service "* ]] && return 0
    done
    return 1
}
function enable_service { ENABLED_SERVICES="$ENABLED_SERVICES $1"; }
function echo_summary { echo "summary: $*"; }
function setup_develop { echo "setup_develop $*" >> "$CALLS"; }
function run_process { echo "run_process $*" >> "$CALLS"; }
function stop_process { echo "stop_process $*" >> "$CALLS"; }
function get_python_exec_prefix { echo /usr/local/bin; }
function sudo { "$@"; }
function iniset {
    "$PYTHON" - "$@" <<'PY'
import configparser
import sys
path, section, option, value = sys.argv[1:5]
conf = configparser.RawConfigParser()
conf.optionxform = str
conf.read(path)
if not conf.has_section(section):
    conf.add_section(section)
conf.set(section, option, value)
with open(path, 'w') as f:
    conf.write(f)
PY
}
'''


class DevStackPluginTest(base.TestCase):

    def setUp(self):
        super().setUp()
        if not shutil.which('bash'):
            self.skipTest('bash is not installed')
        self.conf_dir = os.path.join(self.tmp, 'etc')
        os.mkdir(self.conf_dir)
        for name in ('pipeline.yaml', 'event_pipeline.yaml'):
            shutil.copy(os.path.join(CEILOMETER_DATA, name), self.conf_dir)
        polling = os.path.join(self.conf_dir, 'polling.yaml')
        if os.path.exists(PACKAGED_POLLING):
            shutil.copy(PACKAGED_POLLING, polling)
        else:
            with open(polling, 'w') as f:
                f.write('---\nsources:\n  - name: some_pollsters\n'
                        '    interval: 300\n    meters:\n'
                        '      - volume.size\n')
        self.conf = os.path.join(self.conf_dir, 'ceilometer.conf')
        open(self.conf, 'w').close()
        self.calls = os.path.join(self.tmp, 'calls')
        self.stubs = os.path.join(self.tmp, 'stubs.sh')
        with open(self.stubs, 'w') as f:
            f.write(STUBS)

    def phase(self, *args, extra_env=None):
        env = dict(os.environ, PYTHON=sys.executable, DEST=self.tmp,
                   DATA_DIR=os.path.join(self.tmp, 'data'),
                   STACK_USER=subprocess.check_output(
                       ['id', '-un'], text=True).strip(),
                   CEILOMETER_CONF=self.conf,
                   CEILOMETER_CONF_DIR=self.conf_dir,
                   SCS_PUBLISHER_DIR=REPO, CALLS=self.calls,
                   ENABLED_SERVICES='ceilometer-anotification')
        env.update(extra_env or {})
        script = ('source "%s"; source "%s/devstack/settings"; '
                  'source "%s/devstack/plugin.sh" %s'
                  % (self.stubs, REPO, REPO, ' '.join(args)))
        done = subprocess.run(['bash', '-e', '-c', script], env=env,
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(0, done.returncode, done.stdout + done.stderr)
        return done.stdout

    def load(self, name):
        with open(os.path.join(self.conf_dir, name)) as f:
            return yaml.safe_load(f)

    def ini(self):
        conf = configparser.RawConfigParser()
        conf.read(self.conf)
        return conf

    def calls_made(self):
        if not os.path.exists(self.calls):
            return []
        with open(self.calls) as f:
            return f.read().splitlines()

    def test_post_config_edits_the_pipelines_polling_and_conf(self):
        out = self.phase('stack', 'post-config')
        self.assertIn('summary: Configuring scs_publisher', out)
        sinks = self.load('pipeline.yaml')['sinks']
        self.assertEqual([['gnocchi://', 'scs://']],
                         [s['publishers'] for s in sinks])
        events = self.load('event_pipeline.yaml')
        # scs:// alone in a sink of its own; the stock sink is untouched.
        self.assertEqual({'event_sink': ['notifier://'],
                          'scs_event_sink': ['scs://']},
                         {s['name']: s['publishers']
                          for s in events['sinks']})
        self.assertIn({'name': 'scs_event_source', 'events': ['*'],
                       'sinks': ['scs_event_sink']}, events['sources'])
        polling = {s['name']: s for s in self.load('polling.yaml')[
            'sources']}
        self.assertEqual(600, polling['scs_inventory']['interval'])
        self.assertEqual(6, len(polling['scs_inventory']['meters']))
        self.assertGreater(len(polling), 1)  # the stock sources stay
        conf = self.ini()
        self.assertEqual('False', conf['notification']['ack_on_event_error'])
        self.assertEqual('billing', conf['scs_publisher']['sinks'])
        self.assertEqual({'url': 'http://127.0.0.1:8099/',
                          'format': 'ceilometer', 'content': 'billing'},
                         dict(conf['sink:billing']))
        state = conf['scs_publisher']['state_path']
        self.assertEqual(0o700, os.stat(state).st_mode & 0o777)
        # What it wrote is a configuration scs_publisher accepts.
        check = subprocess.run(
            [sys.executable, '-m', 'scs_publisher.cmd.main', 'check-config',
             '--config-file', self.conf], capture_output=True, text=True)
        self.assertEqual(0, check.returncode, check.stdout + check.stderr)

    def test_running_twice_changes_nothing(self):
        self.phase('stack', 'post-config')
        first = {name: open(os.path.join(self.conf_dir, name)).read()
                 for name in os.listdir(self.conf_dir)}
        self.phase('stack', 'post-config')
        second = {name: open(os.path.join(self.conf_dir, name)).read()
                  for name in os.listdir(self.conf_dir)}
        self.assertEqual(first, second)

    def test_settings_for_an_external_sink(self):
        self.phase('stack', 'post-config', extra_env={
            'SCS_PUBLISHER_SINK_URL': 'https://billing.example.com/in',
            'SCS_PUBLISHER_SINK_FORMAT': 'cloudevents',
            'SCS_PUBLISHER_SINK_SECRET': 'whsec_c2VjcmV0',
            'SCS_PUBLISHER_INVENTORY_INTERVAL': '900'})
        sink = dict(self.ini()['sink:billing'])
        self.assertEqual({'url': 'https://billing.example.com/in',
                          'format': 'cloudevents', 'content': 'billing',
                          'secret': 'whsec_c2VjcmV0'}, sink)
        polling = {s['name']: s for s in self.load('polling.yaml')[
            'sources']}
        self.assertEqual(900, polling['scs_inventory']['interval'])

    def test_install_extra_unstack_and_clean(self):
        self.phase('stack', 'install')
        self.phase('stack', 'post-config')
        self.phase('stack', 'extra')
        self.phase('unstack')
        calls = self.calls_made()
        self.assertEqual('setup_develop %s' % REPO, calls[0])
        self.assertTrue(calls[1].startswith(
            'run_process scs-receiver /usr/local/bin/scs-publisher receive '
            '--port 8099 --store '), calls[1])
        self.assertEqual('stop_process scs-receiver', calls[2])
        state = self.ini()['scs_publisher']['state_path']
        self.assertTrue(os.path.isdir(state))
        self.phase('clean')
        self.assertFalse(os.path.exists(state))

    def test_nothing_happens_without_ceilometer(self):
        self.phase('stack', 'post-config', extra_env={
            'ENABLED_SERVICES': 'nova'})
        self.assertEqual(['meter_sink'], [
            s['name'] for s in self.load('pipeline.yaml')['sinks']])
        self.assertEqual([], self.ini().sections())
