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
"""``scs-publisher demo``, the README's main job, run as a user runs it."""

import subprocess
import sys

from scs_publisher.tests import base


class DemoTest(base.TestCase):

    def test_demo_delivers_everything_once_through_an_outage(self):
        done = subprocess.run(
            [sys.executable, '-m', 'scs_publisher.cmd.main', 'demo',
             '--notifications', '120', '--seed', '3', '--outage', '2'],
            capture_output=True, text=True, timeout=300)
        text = done.stdout
        self.assertEqual(0, done.returncode, text + done.stderr)
        self.assertIn('Deliveries the sink failed with 503:      2', text)
        self.assertIn('Duplicates the receiver had to drop:      0', text)
        self.assertIn('(120 events,', text)
        self.assertIn('Every event and sample arrived once, signed.', text)
        self.assertNotIn('Eventlet is deprecated', done.stderr)
