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
"""Wire formats: how outbox items become the bytes a sink sends.

A format renders each item to one JSON text (a line for the file sink) and
joins rendered items into one request body (for the http sink). Formats
are found by name in the entry point group ``scs_publisher.formats``.
"""

import abc


class Format(metaclass=abc.ABCMeta):
    #: Media type of :meth:`body`.
    content_type = 'application/json'

    def __init__(self, source):
        #: This cloud's identity, ``[scs_publisher] source``.
        self.source = source

    @abc.abstractmethod
    def render(self, item):
        """One :class:`~scs_publisher.sink_queue.OutboxItem` as JSON text."""

    def body(self, rendered):
        """A JSON array of rendered items, as ``json.dumps`` writes it."""
        return ('[' + ', '.join(rendered) + ']').encode('utf-8')
