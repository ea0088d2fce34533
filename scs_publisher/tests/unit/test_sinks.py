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
"""Sink configuration, the http and file drivers and the wire formats,
against real HTTP servers on loopback."""

import base64
import dataclasses
import email.utils
import json
import os
import socket
import stat
import threading

from scs_publisher import formats
from scs_publisher.formats import cloudevents
from scs_publisher import opts
from scs_publisher import receiver as receiver_mod
from scs_publisher import signing
from scs_publisher import sink_queue
from scs_publisher import sinks
from scs_publisher.sinks import http as http_sink
from scs_publisher.sinks import loader
from scs_publisher.tests import base

SECRET = 'whsec_' + base64.b64encode(b'0123456789abcdef').decode()


def item(n, kind='event', payload=None, event_type='volume.create.end'):
    if payload is None:
        payload = json.dumps({'message_id': 'm%d' % n,
                              'event_type': event_type,
                              'generated': '2026-12-03T10:00:00',
                              'traits': [['resource_id', 1, 'vol-%d' % n]],
                              'raw': {}})
    return sink_queue.OutboxItem(n, kind, 'm%d' % n, event_type, 'p1',
                                 0.0, payload)


def delivery(items, fmt=None, delivery_id='d-1'):
    fmt = fmt or formats_by_name('ceilometer')
    rendered = [fmt.render(i) for i in items]
    return sinks.Delivery(delivery_id, rendered, fmt.body(rendered),
                          fmt.content_type, items)


def formats_by_name(name):
    from scs_publisher.formats import ceilometer
    return {'ceilometer': ceilometer.CeilometerFormat,
            'cloudevents': cloudevents.CloudEventsFormat}[name]('RegionOne')


class LoaderTest(base.TestCase):

    def load(self, text):
        return loader.load_sinks(self.make_conf(text))

    def assertError(self, text, *fragments):
        sinks_, errors = self.load(text)
        self.assertEqual([], sinks_)
        self.assertEqual(1, len(errors), errors)
        for fragment in fragments:
            self.assertIn(fragment, errors[0])

    def test_valid_sinks_load_without_touching_the_network(self):
        sinks_, errors = self.load(
            '[scs_publisher]\nsinks = a, b\n'
            '[sink:a]\nurl = https://billing.invalid/hook\n'
            'format = cloudevents\nsecret = %s\n'
            '[sink:b]\nurl = file:///tmp/x.jsonl\ncontent = raw\n' % SECRET)
        self.assertEqual([], errors)
        self.assertEqual(['a', 'b'], [s.name for s in sinks_])
        self.assertIsInstance(sinks_[0].driver, http_sink.HttpSink)
        self.assertEqual(('billing', 'raw'),
                         (sinks_[0].content, sinks_[1].content))

    def test_missing_url(self):
        self.assertError('[scs_publisher]\nsinks = a\n', '[sink:a] url',
                         'required')

    def test_unknown_scheme(self):
        self.assertError('[scs_publisher]\nsinks = a\n[sink:a]\n'
                         'url = ftp://x/\n', '[sink:a] url scheme', "'ftp'",
                         'file, http, https')

    def test_unknown_format(self):
        self.assertError('[scs_publisher]\nsinks = a\n[sink:a]\n'
                         'url = http://x/\nformat = xml\n',
                         '[sink:a] format', "'xml'")

    def test_bad_content(self):
        self.assertError('[scs_publisher]\nsinks = a\n[sink:a]\n'
                         'url = http://x/\ncontent = everything\n',
                         '[sink:a] content')

    def test_bad_batch_size(self):
        self.assertError('[scs_publisher]\nsinks = a\n[sink:a]\n'
                         'url = http://x/\nbatch_size = lots\n',
                         '[sink:a] batch_size')

    def test_bad_retry_schedule(self):
        self.assertError('[scs_publisher]\nsinks = a\n[sink:a]\n'
                         'url = http://x/\nretry_schedule = 5, soon\n',
                         '[sink:a] retry_schedule')

    def test_http_url_without_host(self):
        self.assertError('[scs_publisher]\nsinks = a\n[sink:a]\n'
                         'url = https:///path\n', '[sink:a] url', 'no host')

    def test_unreadable_ca_file(self):
        self.assertError('[scs_publisher]\nsinks = a\n[sink:a]\n'
                         'url = https://x/\nca_file = /nonexistent.pem\n',
                         '[sink:a] ca_file')

    def test_bad_whsec_secret(self):
        self.assertError('[scs_publisher]\nsinks = a\n[sink:a]\n'
                         'url = https://x/\nsecret = whsec_***\n',
                         '[sink:a] secret')

    def test_file_url_needs_a_path(self):
        self.assertError('[scs_publisher]\nsinks = a\n[sink:a]\n'
                         'url = file://host\n', '[sink:a] url',
                         'absolute path')

    def test_sink_listed_twice(self):
        sinks_, errors = self.load('[scs_publisher]\nsinks = a, a\n'
                                   '[sink:a]\nurl = http://x/\n')
        self.assertEqual(['a'], [s.name for s in sinks_])
        self.assertIn('listed twice', errors[0])

    def test_one_bad_sink_does_not_stop_the_others(self):
        sinks_, errors = self.load('[scs_publisher]\nsinks = good, bad\n'
                                   '[sink:good]\nurl = http://x/\n')
        self.assertEqual(['good'], [s.name for s in sinks_])
        self.assertIn('[sink:bad] url', errors[0])

    def test_filters(self):
        (sink,), _ = self.load('[scs_publisher]\nsinks = a\n[sink:a]\n'
                               'url = http://x/\nevent_types = volume.*\n'
                               'projects = p1\n')
        self.assertTrue(sink.wants(item(1)))
        self.assertFalse(sink.wants(item(2, event_type='image.update')))
        self.assertFalse(sink.wants(
            dataclasses.replace(item(3), project_id='p2')))

    def test_sample_config_lists_sink_options(self):
        names = {opt.dest for group, group_opts in opts.list_opts()
                 for opt in group_opts}
        self.assertTrue({'url', 'format', 'content', 'secret', 'token',
                         'verify', 'connection', 'sinks'} <= names)


class HttpSinkTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.answers = []
        self.receiver = receiver_mod.Receiver(
            secrets=[SECRET], responder=self._answer).start()
        self.addCleanup(self.receiver.stop)

    def _answer(self, headers, body):
        return self.answers.pop(0) if self.answers else None

    def sink(self, extra='', url=None):
        (sink,), errors = loader.load_sinks(self.make_conf(
            '[scs_publisher]\nsinks = hook\n[sink:hook]\nurl = %s\n'
            'secret = %s\n%s' % (url or self.receiver.url, SECRET, extra)))
        self.addCleanup(sink.driver.close)
        return sink.driver

    def test_posts_the_body_with_standard_webhooks_headers(self):
        batch = delivery([item(1), item(2)])
        self.sink().send(batch)
        self.assertEqual(2, len(self.receiver.items))
        headers = self.receiver.requests[0]
        self.assertEqual('d-1', headers['webhook-id'])
        self.assertEqual('d-1', headers['Idempotency-Key'])
        self.assertEqual('application/json', headers['Content-Type'])
        # The receiver verified the signature; check it against the body.
        signing.verify([SECRET], headers, batch.body)
        self.assertEqual([], self.receiver.rejected)

    def test_body_is_the_json_array_of_items(self):
        batch = delivery([item(1), item(2)])
        self.assertEqual(json.dumps([json.loads(item(1).payload),
                                     json.loads(item(2).payload)]).encode(),
                         batch.body)

    def test_5xx_is_retryable(self):
        self.answers.append((503, {}))
        error = self.assertRaises(sinks.RetryableError,
                                  self.sink().send, delivery([item(1)]))
        self.assertEqual(503, error.status_code)

    def test_429_carries_retry_after(self):
        self.answers.append((429, {'Retry-After': '7'}))
        error = self.assertRaises(sinks.RetryableError,
                                  self.sink().send, delivery([item(1)]))
        self.assertEqual(7.0, error.retry_after)

    def test_422_is_permanent_with_the_response(self):
        self.answers.append((422, {}))
        error = self.assertRaises(sinks.PermanentError,
                                  self.sink().send, delivery([item(1)]))
        self.assertEqual(422, error.status_code)
        self.assertIn('scripted answer', error.response)

    def test_401_is_retried_because_an_operator_can_fix_it(self):
        self.answers.append((401, {}))
        self.assertRaises(sinks.RetryableError, self.sink().send,
                          delivery([item(1)]))

    def test_redirect_is_not_followed(self):
        self.answers.append((302, {'Location': 'http://127.0.0.1:1/'}))
        self.assertRaises(sinks.RetryableError, self.sink().send,
                          delivery([item(1)]))

    def test_connection_refused_is_retryable(self):
        port = _free_port()
        self.assertRaisesRegex(
            sinks.RetryableError, 'cannot reach',
            self.sink(url='http://127.0.0.1:%d/' % port).send,
            delivery([item(1)]))

    def test_garbage_answer_is_retryable(self):
        with _GarbageServer() as url:
            self.assertRaises(sinks.RetryableError, self.sink(url=url).send,
                              delivery([item(1)]))

    def test_silence_times_out(self):
        with _GarbageServer(reply=None) as url:
            self.assertRaisesRegex(
                sinks.RetryableError, 'no answer',
                self.sink('timeout = 0.3\n', url=url).send,
                delivery([item(1)]))

    def test_bearer_token(self):
        self.sink('token = s3cr3t\n').send(delivery([item(1)]))
        self.assertEqual('Bearer s3cr3t',
                         self.receiver.requests[0]['Authorization'])

    def test_basic_auth_from_options(self):
        self.sink('username = bill\npassword = pw\n').send(
            delivery([item(1)]))
        self.assertEqual('Basic ' + base64.b64encode(b'bill:pw').decode(),
                         self.receiver.requests[0]['Authorization'])

    def test_describe_hides_credentials(self):
        driver = self.sink(url='http://bill:pw@127.0.0.1:9/x')
        self.assertEqual('http://127.0.0.1:9/x', driver.describe())


class FileSinkTest(base.TestCase):

    def sink(self, path):
        (sink,), errors = loader.load_sinks(self.make_conf(
            '[scs_publisher]\nsinks = f\n[sink:f]\nurl = file://%s\n'
            % path))
        return sink.driver

    def test_appends_json_lines_privately(self):
        path = os.path.join(self.tmp, 'out', 'items.jsonl')
        driver = self.sink(path)
        driver.send(delivery([item(1), item(2)]))
        driver.send(delivery([item(3)]))
        with open(path) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(['m1', 'm2', 'm3'],
                         [line['message_id'] for line in lines])
        self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))

    def test_unwritable_path_is_retryable(self):
        driver = self.sink(self.tmp)  # a directory, not a file
        self.assertRaises(sinks.RetryableError, driver.send,
                          delivery([item(1)]))


class FormatTest(base.TestCase):

    def test_cloudevents_envelope_for_an_event(self):
        fmt = formats_by_name('cloudevents')
        envelope = json.loads(fmt.render(item(1)))
        self.assertEqual({
            'specversion': '1.0', 'id': 'm1', 'source': '/scs/RegionOne',
            'type': 'org.openstack.ceilometer.event.volume.create.end',
            'subject': 'vol-1', 'time': '2026-12-03T10:00:00Z',
            'datacontenttype': 'application/json',
            'data': json.loads(item(1).payload)}, envelope)
        self.assertEqual('application/cloudevents-batch+json',
                         fmt.content_type)

    def test_cloudevents_envelope_for_a_sample(self):
        fmt = formats_by_name('cloudevents')
        sample = sink_queue.OutboxItem(
            1, 'sample', 's-1', 'volume.size', 'p1', 0.0, json.dumps({
                'name': 'volume.size', 'resource_id': 'vol-1',
                'timestamp': '2026-12-03T10:00:00+00:00', 'id': 's-1'}))
        envelope = json.loads(fmt.render(sample))
        self.assertEqual(
            ('org.openstack.ceilometer.sample.volume.size', 'vol-1',
             '2026-12-03T10:00:00+00:00'),
            (envelope['type'], envelope['subject'], envelope['time']))

    def test_base_body_joins_like_json_dumps(self):
        self.assertEqual(json.dumps([{'a': 1}, {'b': [2]}]).encode(),
                         formats.Format.body(None, ['{"a": 1}',
                                                    '{"b": [2]}']))


class RetryAfterTest(base.TestCase):

    def test_seconds(self):
        self.assertEqual(120.0, http_sink.parse_retry_after('120'))

    def test_http_date(self):
        when = email.utils.formatdate(1000.0 + 30, usegmt=True)
        self.assertEqual(30.0, http_sink.parse_retry_after(when, now=1000.0))

    def test_garbage(self):
        self.assertIsNone(http_sink.parse_retry_after('soon'))


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class _GarbageServer:
    """A TCP server that answers every connection with bytes that are not
    HTTP (or, with ``reply=None``, never answers)."""

    def __init__(self, reply=b'\x00\xffnot http at all\r\n\r\n'):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.conns = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.recv(65536)
                conn.sendall(self.reply)
                conn.close()

    def __enter__(self):
        self.thread.start()
        return 'http://127.0.0.1:%d/' % self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()
        for conn in self.conns:
            conn.close()
