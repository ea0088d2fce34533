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
"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the
signature header holds one ``v1,<base64 HMAC-SHA256>`` per secret, space
separated, so a receiver can rotate secrets without losing a request.

A secret written as ``whsec_<base64>`` (the Standard Webhooks form) is
base64-decoded; any other string is used as its UTF-8 bytes.
"""

import base64
import hashlib
import hmac
import time

HEADER_ID = 'webhook-id'
HEADER_TIMESTAMP = 'webhook-timestamp'
HEADER_SIGNATURE = 'webhook-signature'

# Receivers reject timestamps further than this from their clock, which
# stops replay of a captured request.
DEFAULT_TOLERANCE = 5 * 60


class SignatureError(Exception):
    pass


def secret_key(secret):
    if secret.startswith('whsec_'):
        try:
            return base64.b64decode(secret[len('whsec_'):], validate=True)
        except ValueError as exc:
            raise ValueError('a "whsec_" secret must be base64') from exc
    return secret.encode('utf-8')


def _signature(key, msg_id, timestamp, body):
    signed = b'%s.%s.%s' % (msg_id.encode('utf-8'),
                            str(timestamp).encode('ascii'), body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return 'v1,' + base64.b64encode(digest).decode('ascii')


def sign(secrets, msg_id, timestamp, body):
    """The ``webhook-signature`` value for ``body`` under each secret."""
    return ' '.join(_signature(secret_key(s), msg_id, timestamp, body)
                    for s in secrets)


def verify(secrets, headers, body, tolerance=DEFAULT_TOLERANCE, now=None):
    """Check a request's Standard Webhooks headers against ``secrets``.

    :param headers: a case-insensitive mapping of the request headers.
    :raises SignatureError: missing headers, a stale timestamp or no
        signature made with any of the secrets.
    """
    msg_id = headers.get(HEADER_ID)
    timestamp = headers.get(HEADER_TIMESTAMP)
    given = headers.get(HEADER_SIGNATURE)
    if not (msg_id and timestamp and given):
        raise SignatureError('missing webhook-id, webhook-timestamp or '
                             'webhook-signature header')
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureError('webhook-timestamp is not an integer')
    now = time.time() if now is None else now
    if abs(now - sent_at) > tolerance:
        raise SignatureError('webhook-timestamp is outside the tolerance '
                             'of %d seconds' % tolerance)
    offered = [sig for sig in given.split(' ') if sig.startswith('v1,')]
    for secret in secrets:
        expected = _signature(secret_key(secret), msg_id, timestamp, body)
        if any(hmac.compare_digest(expected, sig) for sig in offered):
            return
    raise SignatureError('no signature matches')
