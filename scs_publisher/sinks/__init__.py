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
"""Sink drivers: where deliveries go.

A driver is a subclass of :class:`Sink` registered under its URL scheme in
the entry point group ``scs_publisher.sinks``. It is handed a
:class:`Delivery` (already formatted and identified) and either returns,
raises :class:`RetryableError` (try again later) or :class:`PermanentError`
(this content will never be accepted). Drivers know neither the ledger nor
the billing rules.
"""

import abc
import dataclasses


class DeliveryError(Exception):
    def __init__(self, message, status_code=None, response=None):
        super().__init__(message)
        self.status_code = status_code
        self.response = response


class RetryableError(DeliveryError):
    """The sink may accept the same delivery later."""

    def __init__(self, message, status_code=None, response=None,
                 retry_after=None):
        super().__init__(message, status_code, response)
        #: Seconds the sink asked us to wait, if it said.
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """The sink refuses this content; sending it again cannot help."""


@dataclasses.dataclass(frozen=True)
class Delivery:
    #: Stable across retries of the same items (``webhook-id``).
    id: str
    #: One JSON text per item, in order.
    rendered: list
    #: The items as a JSON array, encoded.
    body: bytes
    content_type: str
    #: The outbox items, for drivers that need more than the bytes.
    items: list


class Sink(metaclass=abc.ABCMeta):
    #: Driver-specific options, registered in ``[sink:NAME]`` next to the
    #: common ones in :data:`scs_publisher.opts.SINK_OPTS`.
    OPTS = []

    def __init__(self, name, options, url):
        """Validate options; raise ``ConfigError`` naming the option.

        No network I/O here: the sink may be unreachable at start.

        :param options: the ``[sink:NAME]`` group of the configuration.
        :param url: the parsed ``url`` option (``urllib.parse`` result).
        """
        self.name = name
        self.options = options
        self.url = url

    @property
    def timeout(self):
        """Longest a :meth:`send` may take, in seconds."""
        return 60.0

    @abc.abstractmethod
    def send(self, delivery):
        """Deliver or raise a :class:`DeliveryError`."""

    def describe(self):
        """Where this sink delivers, safe to log (no credentials)."""
        return self.url.scheme + '://' + (self.url.hostname or '') + \
            self.url.path

    def close(self):
        """Release connections and files."""
