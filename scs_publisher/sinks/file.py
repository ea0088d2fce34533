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
"""``file://`` sink: JSON lines, one item a line, fsync'd per delivery.

For archives and debugging. ``url = file:///var/log/ceilometer/billing.jsonl``
appends to that file (created 0600). Rotate it with ``copytruncate``.
"""

import os

from scs_publisher import opts as opts_mod
from scs_publisher import sinks


class FileSink(sinks.Sink):

    def __init__(self, name, options, url):
        super().__init__(name, options, url)
        if url.netloc or not url.path:
            raise opts_mod.ConfigError(
                '[%s] url: a file sink needs an absolute path, '
                'file:///path/to/file.jsonl' % opts_mod.sink_group(name))
        self.path = url.path

    @property
    def timeout(self):
        return 30.0

    def send(self, delivery):
        data = ''.join(line + '\n' for line in delivery.rendered)
        try:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                         0o600)
            try:
                os.write(fd, data.encode('utf-8'))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            # A full disk or a missing mount may heal; retry.
            raise sinks.RetryableError('cannot write %s: %s'
                                       % (self.path, exc.strerror))

    def describe(self):
        return 'file://' + self.path
