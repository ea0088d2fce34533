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

import unittest

from scs_publisher import signing

# The test vector of the Standard Webhooks specification.
SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
MSG_ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek'
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='


def headers(signature=SIGNATURE, timestamp=TIMESTAMP):
    return {signing.HEADER_ID: MSG_ID,
            signing.HEADER_TIMESTAMP: str(timestamp),
            signing.HEADER_SIGNATURE: signature}


class SigningTest(unittest.TestCase):

    def test_specification_vector(self):
        self.assertEqual(SIGNATURE,
                         signing.sign([SECRET], MSG_ID, TIMESTAMP, BODY))

    def test_one_signature_per_secret_for_rotation(self):
        both = signing.sign([SECRET, 'new-secret'], MSG_ID, TIMESTAMP, BODY)
        self.assertEqual(2, len(both.split(' ')))
        for secret in ([SECRET], ['new-secret']):
            signing.verify(secret, headers(both), BODY, now=TIMESTAMP)

    def test_verify_accepts_the_vector(self):
        signing.verify([SECRET], headers(), BODY, now=TIMESTAMP + 10)

    def test_verify_rejects_a_changed_body(self):
        self.assertRaisesRegex(signing.SignatureError, 'no signature',
                               signing.verify, [SECRET], headers(),
                               BODY + b' ', now=TIMESTAMP)

    def test_verify_rejects_a_stale_timestamp(self):
        self.assertRaisesRegex(signing.SignatureError, 'tolerance',
                               signing.verify, [SECRET], headers(), BODY,
                               now=TIMESTAMP + 301)

    def test_verify_rejects_missing_headers(self):
        self.assertRaises(signing.SignatureError, signing.verify, [SECRET],
                          {}, BODY)

    def test_plain_secret_is_its_utf8_bytes(self):
        self.assertEqual(b'abc', signing.secret_key('abc'))

    def test_whsec_secret_must_be_base64(self):
        self.assertRaises(ValueError, signing.secret_key, 'whsec_***')
