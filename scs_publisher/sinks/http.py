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
"""``http://`` and ``https://`` sink: a webhook.

Each delivery is one POST of the formatted batch, with Standard Webhooks
headers (``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` when
secrets are set) and ``Idempotency-Key`` equal to ``webhook-id``.

How answers are taken:

* 2xx: delivered.
* 408, 429, 5xx, connection errors, timeouts, redirects: retried later
  (``Retry-After`` honoured).
* 400, 413, 415, 422: the sink refuses this content. A batch is split to
  find the refused item; that item becomes a dead letter at once.
* Any other 4xx (401, 403, 404, ...): retried, because it usually means a
  wrong token or URL that an operator fixes, after which the same items
  must still arrive.
"""

import email.utils
import os
import time
import urllib.parse

from oslo_config import cfg
import requests

from scs_publisher import opts as opts_mod
from scs_publisher import signing
from scs_publisher import sinks
from scs_publisher import version

REFUSING_STATUSES = frozenset((400, 413, 415, 422))
_RESPONSE_EXCERPT = 2000


def parse_retry_after(value, now=None):
    """Seconds to wait from a Retry-After header (delta or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class HttpSink(sinks.Sink):
    OPTS = [
        cfg.FloatOpt('timeout', default=10.0, min=0.1,
                     help='Seconds to wait for the sink to connect and to '
                          'answer one delivery.'),
        cfg.ListOpt('secret', default=[], secret=True,
                    help='Standard Webhooks signing secrets '
                         '("whsec_<base64>" or any string). Every secret '
                         'signs each request, so a receiver can rotate: '
                         'add the new secret, switch the receiver, then '
                         'remove the old one.'),
        cfg.StrOpt('token', secret=True,
                   help='Bearer token sent as "Authorization: Bearer".'),
        cfg.StrOpt('username',
                   help='User name for HTTP basic authentication.'),
        cfg.StrOpt('password', secret=True,
                   help='Password for HTTP basic authentication.'),
        cfg.BoolOpt('verify', default=True,
                    help='Verify the sink\'s TLS certificate. Turn off only '
                         'for testing.'),
        cfg.StrOpt('ca_file',
                   help='CA bundle to verify the sink\'s certificate with, '
                        'instead of the system store.'),
        cfg.StrOpt('client_cert',
                   help='Client certificate (PEM) for mutual TLS.'),
        cfg.StrOpt('client_key',
                   help='Key of client_cert, if not in the same file.'),
    ]

    def __init__(self, name, options, url):
        super().__init__(name, options, url)
        group = opts_mod.sink_group(name)
        if not url.hostname:
            raise opts_mod.ConfigError('[%s] url: no host in %s://...'
                                       % (group, url.scheme))
        try:
            url.port
        except ValueError:
            raise opts_mod.ConfigError('[%s] url: the port is not a number'
                                       % group)
        for opt in ('ca_file', 'client_cert', 'client_key'):
            if options[opt] and not _readable(options[opt]):
                raise opts_mod.ConfigError('[%s] %s: cannot read %s'
                                           % (group, opt, options[opt]))
        if options.client_key and not options.client_cert:
            raise opts_mod.ConfigError('[%s] client_key needs client_cert'
                                       % group)
        if options.token and (options.username or url.username):
            raise opts_mod.ConfigError('[%s] token and username: choose one '
                                       'kind of authentication' % group)
        for index, secret in enumerate(options.secret):
            try:
                signing.secret_key(secret)
            except ValueError as exc:
                raise opts_mod.ConfigError('[%s] secret (item %d): %s'
                                           % (group, index + 1, exc))
        self.secrets = list(options.secret)
        self._timeout = options.timeout
        self.target = urllib.parse.urlunsplit((
            url.scheme, _host_port(url), url.path or '/', url.query, ''))
        username = options.username or (
            urllib.parse.unquote(url.username) if url.username else None)
        password = options.password or (
            urllib.parse.unquote(url.password) if url.password else '')
        self.auth = (username, password) if username else None
        self.token = options.token
        if options.ca_file:
            self.verify = options.ca_file
        else:
            self.verify = options.verify
        if options.client_cert and options.client_key:
            self.cert = (options.client_cert, options.client_key)
        else:
            self.cert = options.client_cert
        self._session = None

    @property
    def timeout(self):
        return self._timeout

    @property
    def session(self):
        if self._session is None:
            session = requests.Session()
            session.headers['User-Agent'] = (
                'scs-publisher/%s' % version.version_string())
            # Read the environment (proxies, CA bundle) once, not on every
            # request as requests does by default: a dispatcher sends
            # many requests, and each look costs the agent time.
            session.proxies = requests.utils.get_environ_proxies(
                self.target)
            if self.verify is True:
                self.verify = (os.environ.get('REQUESTS_CA_BUNDLE') or
                               os.environ.get('CURL_CA_BUNDLE') or True)
            session.trust_env = False
            self._session = session
        return self._session

    def headers(self, delivery, timestamp):
        headers = {'Content-Type': delivery.content_type,
                   signing.HEADER_ID: delivery.id,
                   signing.HEADER_TIMESTAMP: str(timestamp),
                   'Idempotency-Key': delivery.id}
        if self.secrets:
            headers[signing.HEADER_SIGNATURE] = signing.sign(
                self.secrets, delivery.id, timestamp, delivery.body)
        if self.token:
            headers['Authorization'] = 'Bearer ' + self.token
        return headers

    def send(self, delivery):
        timestamp = int(time.time())
        try:
            response = self.session.post(
                self.target, data=delivery.body,
                headers=self.headers(delivery, timestamp),
                auth=self.auth, cert=self.cert, verify=self.verify,
                timeout=self._timeout, allow_redirects=False)
        except requests.Timeout:
            raise sinks.RetryableError('no answer within %.1f s'
                                       % self._timeout)
        except requests.RequestException as exc:
            raise sinks.RetryableError('cannot reach %s: %s'
                                       % (self.describe(),
                                          type(exc).__name__))
        status = response.status_code
        if 200 <= status < 300:
            return
        excerpt = response.text[:_RESPONSE_EXCERPT]
        message = 'HTTP %d from %s' % (status, self.describe())
        if status in REFUSING_STATUSES:
            raise sinks.PermanentError(message, status, excerpt)
        raise sinks.RetryableError(
            message, status, excerpt,
            retry_after=parse_retry_after(response.headers.get('Retry-After')))

    def describe(self):
        return urllib.parse.urlunsplit((self.url.scheme, _host_port(self.url),
                                        self.url.path, '', ''))

    def close(self):
        if self._session is not None:
            self._session.close()
            self._session = None


def _host_port(url):
    host = url.hostname
    if ':' in host:
        host = '[%s]' % host
    return host + (':%d' % url.port if url.port else '')


def _readable(path):
    try:
        with open(path, 'rb'):
            return True
    except OSError:
        return False
