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
"""The reference receiver, over real HTTP on loopback."""

import json
import os
import time

import requests

from scs_publisher import receiver as receiver_mod
from scs_publisher import signing
from scs_publisher.tests import base

SECRET = 'whsec_cmVjZWl2ZXItdGVzdA=='


class ReceiverTest(base.TestCase):

    def start(self, **kwargs):
        rcv = receiver_mod.Receiver(**kwargs).start()
        self.addCleanup(rcv.stop)
        return rcv

    def post(self, rcv, items, secret=None, msg_id='d-1'):
        body = json.dumps(items).encode()
        headers = {'Content-Type': 'application/json'}
        if secret:
            now = int(time.time())
            headers.update({
                signing.HEADER_ID: msg_id,
                signing.HEADER_TIMESTAMP: str(now),
                signing.HEADER_SIGNATURE: signing.sign([secret], msg_id,
                                                       now, body)})
        return requests.post(rcv.url, data=body, headers=headers, timeout=5)

    def test_drops_items_it_already_has(self):
        rcv = self.start()
        self.assertEqual(200, self.post(rcv, [{'message_id': 'a'},
                                              {'id': 'b'}]).status_code)
        reply = self.post(rcv, [{'message_id': 'a'}, {'id': 'c'}]).json()
        self.assertEqual({'accepted': 1, 'duplicates': 1}, reply)
        self.assertEqual(['a', 'b', 'c'],
                         [receiver_mod.item_id(i) for i in rcv.items])
        self.assertEqual(1, rcv.duplicates)

    def test_cloudevents_are_keyed_on_their_id(self):
        rcv = self.start()
        event = {'specversion': '1.0', 'id': 'ce-1', 'type': 't',
                 'source': '/s', 'data': {'message_id': 'inner'}}
        self.post(rcv, [event])
        self.post(rcv, [event])
        self.assertEqual(1, len(rcv.items))

    def test_signature_required_when_secret_set(self):
        rcv = self.start(secrets=[SECRET])
        self.assertEqual(401, self.post(rcv, [{'id': 'x'}]).status_code)
        self.assertEqual(401, self.post(rcv, [{'id': 'x'}],
                                        secret='whsec_b3RoZXI=').status_code)
        self.assertEqual(200, self.post(rcv, [{'id': 'x'}],
                                        secret=SECRET).status_code)
        self.assertEqual(2, len(rcv.rejected))

    def test_refuses_what_is_not_an_array_of_items(self):
        rcv = self.start()
        self.assertEqual(400, requests.post(rcv.url, data=b'{nope',
                                            timeout=5).status_code)
        self.assertEqual(400, self.post(rcv, {'id': 'x'}).status_code)
        self.assertEqual(400, self.post(rcv, [{'no': 'id'}]).status_code)
        self.assertEqual([], rcv.items)

    def test_stores_accepted_items(self):
        path = os.path.join(self.tmp, 'store.jsonl')
        rcv = self.start(store_path=path)
        self.post(rcv, [{'id': 'a'}, {'id': 'b'}])
        self.post(rcv, [{'id': 'a'}])
        with open(path) as f:
            self.assertEqual(['a', 'b'], [json.loads(line)['id']
                                          for line in f])
