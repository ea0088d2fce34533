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
"""Usage windows, on the pure functions."""

from scs_publisher import billing
from scs_publisher import reconcile
from scs_publisher.tests import base
from scs_publisher import usage

HOUR = 3600.0
T0 = 1764000000.0 - 1764000000.0 % HOUR  # a window boundary


class UsageTest(base.TestCase):

    settings = reconcile.Settings(source='Test', usage_grace=600)

    def window(self, *samples):
        window = usage.UsageWindow('object_storage', 'p1',
                                   'storage.objects.size', T0, T0 + HOUR,
                                   unit='B', project_id='p1')
        for offset, volume in samples:
            usage.add_sample(window, T0 + offset, volume, 's%d' % offset)
        return window

    def test_bounds_align_to_the_window_length(self):
        self.assertEqual((T0, T0 + HOUR), usage.bounds(T0 + 1799, HOUR))
        self.assertEqual((T0 + HOUR, T0 + 2 * HOUR),
                         usage.bounds(T0 + HOUR, HOUR))

    def test_time_weighted_mean_of_irregular_samples(self):
        # 100 for the first 30 minutes (the first value holds back to the
        # window's start), 400 for 15, 0 for the last 15.
        window = self.window((900, 100), (1800, 400), (2700, 0))
        self.assertEqual(150.0, usage.quantity(window))

    def test_arrival_order_does_not_matter(self):
        self.assertEqual(
            usage.quantity(self.window((900, 100), (1800, 400))),
            usage.quantity(self.window((1800, 400), (900, 100))))

    def test_same_time_twice_counts_once(self):
        window = self.window((900, 100))
        self.assertFalse(usage.add_sample(window, T0 + 900, 100, 'again'))
        self.assertEqual(1, len(window.samples))

    def test_finalize_then_correct_on_a_late_sample(self):
        state = reconcile.ResourceState('object_storage', 'p1')
        window = self.window((0, 100))
        self.assertFalse(usage.is_due(window, T0 + HOUR + 599,
                                      self.settings))
        self.assertTrue(usage.is_due(window, T0 + HOUR + 600,
                                     self.settings))
        [first] = usage.finalize(window, state, self.settings, T0 + 2 * HOUR)
        self.assertEqual((billing.USAGE, 100.0, 1, T0 + HOUR, 1),
                         (first.type, first.quantity, first.sample_count,
                          first.effective_at, first.sequence))
        # Finalizing again without news sends nothing.
        self.assertEqual([], usage.finalize(window, state, self.settings,
                                            T0 + 3 * HOUR))
        usage.add_sample(window, T0 + 1800, 300, 'late')
        [correction] = usage.finalize(window, state, self.settings,
                                      T0 + 3 * HOUR)
        self.assertEqual((billing.CORRECTION, first.id, billing.USAGE,
                          billing.REASON_LATE_SAMPLE, 200.0, 2),
                         (correction.type, correction.supersedes,
                          correction.corrects, correction.reason,
                          correction.quantity, correction.sample_count))

    def test_empty_window_sends_nothing(self):
        state = reconcile.ResourceState('object_storage', 'p1')
        self.assertEqual([], usage.finalize(self.window(), state,
                                            self.settings, T0 + 2 * HOUR))
