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
"""A reference receiver for the provider's side of a sink.

It shows in a few lines what a billing system has to do with our requests:
verify the Standard Webhooks signature, drop items whose id it has already
accepted (delivery is at-least-once), store the rest, answer 2xx. It reads
both wire formats (a Ceilometer JSON array, a CloudEvents batch).

``scs-publisher receive`` runs it; tests and the demo embed it.
"""

import http.server
import json
import os
import threading

from scs_publisher import signing


def item_id(item):
    """The id a consumer deduplicates on, in either format."""
    if 'specversion' in item:
        return item.get('id')
    return item.get('message_id') or item.get('id')


class Receiver:
    """An HTTP server on a loopback port that accepts deliveries.

    :param secrets: verify signatures with these; empty: accept unsigned.
    :param store_path: append every accepted item to this JSON-lines file.
    :param responder: a callable ``(headers, body) -> (status, headers)``
        or ``None``, asked before anything else; tests use it to play a
        failing sink.
    :param on_item: called with each accepted item (for printing).
    """

    def __init__(self, host='127.0.0.1', port=0, secrets=(),
                 store_path=None, responder=None, on_item=None):
        self.secrets = list(secrets)
        self.store_path = store_path
        self.responder = responder
        self.on_item = on_item
        self.items = []
        self.requests = []
        self.duplicates = 0
        self.rejected = []
        self._ids = set()
        self._cond = threading.Condition()
        handler = type('Handler', (_Handler,), {'receiver': self})
        self.server = http.server.ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread = None

    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return 'http://%s:%d/' % (host, port)

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={'poll_interval': 0.05},
                                        name='scs-receiver', daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        if self._thread:
            self._thread.join()

    def wait_for(self, count, timeout):
        """Wait until ``count`` distinct items were accepted."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.items) >= count,
                                       timeout)

    def handle(self, headers, body):
        """Take one request; returns ``(status, headers, reply dict)``."""
        with self._cond:
            self.requests.append(dict(headers))
            self._cond.notify_all()
        if self.responder:
            answer = self.responder(headers, body)
            if answer is not None:
                status, extra = answer
                return status, extra, {'error': 'scripted answer'}
        if self.secrets:
            try:
                signing.verify(self.secrets, headers, body)
            except signing.SignatureError as exc:
                return self._reject(401, 'bad signature: %s' % exc)
        try:
            items = json.loads(body)
        except ValueError:
            return self._reject(400, 'body is not JSON')
        if not isinstance(items, list) or not all(
                isinstance(i, dict) and item_id(i) for i in items):
            return self._reject(400, 'expected a JSON array of items with '
                                     'ids')
        accepted = []
        with self._cond:
            for item in items:
                ident = item_id(item)
                if ident in self._ids:
                    self.duplicates += 1
                    continue
                self._ids.add(ident)
                accepted.append(item)
            self._store(accepted)
            self.items.extend(accepted)
            self._cond.notify_all()
        if self.on_item:
            for item in accepted:
                self.on_item(item)
        return 200, {}, {'accepted': len(accepted),
                         'duplicates': len(items) - len(accepted)}

    def _reject(self, status, reason):
        with self._cond:
            self.rejected.append(reason)
        return status, {}, {'error': reason}

    def _store(self, items):
        if not (self.store_path and items):
            return
        fd = os.open(self.store_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                     0o600)
        try:
            os.write(fd, ''.join(json.dumps(i) + '\n'
                                 for i in items).encode('utf-8'))
            os.fsync(fd)
        finally:
            os.close(fd)


class _Handler(http.server.BaseHTTPRequestHandler):
    receiver = None
    protocol_version = 'HTTP/1.1'

    def do_POST(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length)
        status, headers, reply = self.receiver.handle(self.headers, body)
        data = json.dumps(reply).encode('utf-8')
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass  # requests are counted, not logged
