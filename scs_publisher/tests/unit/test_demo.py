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

import os
import re
import subprocess
import sys

from scs_publisher.tests import base


class DemoTest(base.TestCase):

    def test_demo_bills_a_small_cloud_through_an_outage(self):
        report = os.path.join(self.tmp, 'report.html')
        done = subprocess.run(
            [sys.executable, '-m', 'scs_publisher.cmd.main', 'demo',
             '--resources', '40', '--days', '2', '--seed', '3',
             '--outage', '2', '--report', report],
            capture_output=True, text=True, timeout=300)
        text = done.stdout
        self.assertEqual(0, done.returncode, text + done.stderr)
        self.assertIn('2 deliveries failed with 503 and were retried; '
                      'duplicates the receiver dropped: 0', text)
        self.assertIn('Every billing event arrived once, signed.', text)
        self.assertNotIn('Eventlet is deprecated', done.stderr)
        # Billed beside true, per project and resource type: what only
        # reconciliation could recover is off by at most a polling
        # interval, a few percent at most here.
        rows = re.findall(r'^  \w{8}\s+(\S+)\s+([\d.]+) \w\s+([\d.]+) \w\s+'
                          r'([+-][\d.]+)%$', text, re.MULTILINE)
        self.assertGreater(len(rows), 10)
        self.assertTrue(all(abs(float(diff)) < 5 for *_x, diff in rows),
                        rows)
        self.assertIn('recovered by reconciliation', text)
        with open(report, encoding='utf-8') as f:
            page = f.read()
        # A row per resource, and one for the sink's deliveries with the
        # two refused during the outage.
        self.assertEqual(41, page.count('<div class="row">'))
        self.assertIn('class="bar billed', page)
        self.assertEqual(2, page.count('class="bar outage"'))
        # Every fact a tick, by how it was known.
        self.assertIn('class="bar tick notification"', page)
        self.assertIn('class="bar tick reconciliation"', page)
