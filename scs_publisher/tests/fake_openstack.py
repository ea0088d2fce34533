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
"""A simulated OpenStack over HTTP on loopback, for the inventory tests.

It **stands in for the real services**, which cannot run here: Keystone v3
(version discovery, password tokens with a service catalog), Nova
``servers/detail``, Cinder ``volumes``/``snapshots``/``backups`` detail,
Glance v2 ``images`` and Neutron ``floatingips``, each with the request
and response shapes and the paging (``limit``/``marker``, next links) of
the real API. Its content comes from a scenario's ground truth at a chosen
time; on request it fails a page (HTTP 500), answers a page too slowly,
or leaves resources out of its listings (a partial list).
"""

import datetime
import http.server
import json
import threading
import time
import urllib.parse
import uuid

REGION = 'RegionOne'
EPOCH = datetime.datetime(1970, 1, 1)

# service type -> (path prefix, collection, item path under the endpoint)
SERVICES = {
    'compute': ('/compute/v2.1', {'servers/detail': 'servers'}),
    'volumev3': ('/volume/v3/{project}', {'volumes/detail': 'volumes',
                                          'snapshots/detail': 'snapshots',
                                          'backups/detail': 'backups'}),
    'image': ('/image', {'v2/images': 'images'}),
    'network': ('/network', {'v2.0/floatingips': 'floatingips'}),
}
ADMIN_PROJECT = 'admin-project-0000000000000000'


def _iso(epoch):
    return (EPOCH + datetime.timedelta(seconds=epoch)).strftime(
        '%Y-%m-%dT%H:%M:%SZ')


class FakeCloud:
    """Serve ``collections`` (collection name -> list of API items).

    :meth:`load` fills them from a :class:`scenario.Scenario` at a time.
    """

    def __init__(self):
        self.collections = {name: [] for paths in SERVICES.values()
                            for name in paths[1].values()}
        self.failures = {}    # collection -> {page number: status}
        self.delays = {}      # collection -> {page number: seconds}
        self.hidden = set()   # resource ids left out of listings
        self._hide_next = {}  # collection -> ids left out of the next one
        self._hiding = {}     # collection -> ids left out of this one
        self.requests = []
        self.tokens = 0
        self._lock = threading.Lock()
        handler = type('Handler', (_Handler,), {'cloud': self})
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      handler)
        self.server.daemon_threads = True
        self._thread = None

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.server.server_address[1]

    @property
    def auth_url(self):
        return self.url + '/identity/v3'

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={'poll_interval': 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def fail_page(self, collection, page, status=500):
        """Answer ``status`` to that page of every listing; None stops."""
        pages = self.failures.setdefault(collection, {})
        if status is None:
            pages.pop(page, None)
        else:
            pages[page] = status

    def hide_once(self, collection, *ids):
        """Leave ``ids`` out of the next listing of ``collection`` only: a
        partial list that looks complete."""
        with self._lock:
            self._hide_next[collection] = set(ids)

    def delay_page(self, collection, page, seconds):
        self.delays.setdefault(collection, {})[page] = seconds

    def clear_faults(self):
        self.failures.clear()
        self.delays.clear()
        self.hidden.clear()

    # -- content -----------------------------------------------------------

    def load(self, scenario, at, states=None):
        """What exists at ``at`` in ``scenario``, in the APIs' shapes.
        ``states`` maps instance ids to a nova vm_state other than
        ``active`` (``stopped``, ``shelved_offloaded``)."""
        states = states or {}
        collections = {name: [] for name in self.collections}
        for truth in scenario.truth.values():
            if truth.start > at or (truth.end is not None and
                                    truth.end <= at):
                continue
            attrs = truth.segments[0][1]
            for since, segment in truth.segments:
                if since <= at:
                    attrs = segment
            maker = getattr(self, '_%s' % truth.resource_type)
            name, item = maker(truth, attrs, states)
            collections[name].append(item)
        for items in collections.values():
            items.sort(key=lambda item: item['id'])
        with self._lock:
            self.collections = collections

    @staticmethod
    def _instance(truth, attrs, states):
        state = states.get(truth.resource_id, 'active')
        status = {'active': 'ACTIVE', 'stopped': 'SHUTOFF',
                  'shelved_offloaded': 'SHELVED_OFFLOADED'}[state]
        return 'servers', {
            'id': truth.resource_id, 'name': 'vm', 'status': status,
            'tenant_id': truth.project_id, 'user_id': truth.user_id,
            'created': _iso(truth.start), 'updated': _iso(truth.start),
            'OS-EXT-STS:vm_state': state, 'OS-EXT-STS:task_state': None,
            'OS-EXT-STS:power_state': 1 if state == 'active' else 4,
            'flavor': {'original_name': attrs['flavor'],
                       'vcpus': attrs['vcpus'], 'ram': attrs['memory_mb'],
                       'disk': attrs['root_gb'],
                       'ephemeral': attrs['ephemeral_gb'], 'swap': 0,
                       'extra_specs': {}},
            'links': []}

    @staticmethod
    def _volume(truth, attrs, states):
        return 'volumes', {
            'id': truth.resource_id, 'name': 'vol', 'status': 'available',
            'size': attrs['size'], 'volume_type': attrs['volume_type'],
            'created_at': _iso(truth.start)[:-1] + '.000000',
            'os-vol-tenant-attr:tenant_id': truth.project_id,
            'user_id': truth.user_id, 'attachments': [],
            'availability_zone': 'nova', 'bootable': 'false',
            'links': []}

    @staticmethod
    def _volume_snapshot(truth, attrs, states):
        return 'snapshots', {
            'id': truth.resource_id, 'name': 'snap', 'status': 'available',
            'size': attrs['size'], 'volume_id': attrs['volume_id'],
            'created_at': _iso(truth.start)[:-1] + '.000000',
            'os-extended-snapshot-attributes:project_id': truth.project_id,
            'user_id': truth.user_id}

    @staticmethod
    def _volume_backup(truth, attrs, states):
        return 'backups', {
            'id': truth.resource_id, 'name': 'backup', 'status': 'available',
            'size': attrs['size'], 'volume_id': attrs['volume_id'],
            'created_at': _iso(truth.start)[:-1] + '.000000',
            'os-backup-project-attr:project_id': truth.project_id,
            'user_id': truth.user_id, 'links': []}

    @staticmethod
    def _image(truth, attrs, states):
        return 'images', {
            'id': truth.resource_id, 'name': 'image', 'status': 'active',
            'size': attrs['size'], 'owner': truth.project_id,
            'visibility': 'private', 'created_at': _iso(truth.start),
            'disk_format': 'raw', 'container_format': 'bare',
            'self': '/v2/images/%s' % truth.resource_id}

    @staticmethod
    def _floating_ip(truth, attrs, states):
        return 'floatingips', {
            'id': truth.resource_id, 'tenant_id': truth.project_id,
            'project_id': truth.project_id, 'status': 'DOWN',
            'floating_ip_address': '203.0.113.7',
            'floating_network_id': 'public', 'router_id': None,
            'port_id': None, 'created_at': _iso(truth.start)}

    # -- the APIs ----------------------------------------------------------

    def handle(self, method, path, query, body):
        with self._lock:
            self.requests.append((method, path, query))
        if path.rstrip('/') == '/identity/v3' and method == 'GET':
            return 200, {}, self._version()
        if path == '/identity/v3/auth/tokens' and method == 'POST':
            return self._token(body)
        for service, (prefix, paths) in SERVICES.items():
            prefix = prefix.replace('{project}', ADMIN_PROJECT)
            for item_path, collection in paths.items():
                if path == '%s/%s' % (prefix, item_path):
                    return self._page(service, prefix, item_path,
                                      collection, query)
        return 404, {}, {'error': {'code': 404, 'message': 'Not Found'}}

    def _version(self):
        return {'version': {
            'id': 'v3.14', 'status': 'stable',
            'updated': '2020-04-07T00:00:00Z',
            'links': [{'rel': 'self', 'href': self.auth_url + '/'}],
            'media-types': [{'base': 'application/json',
                             'type': 'application/vnd.openstack.identity-'
                                     'v3+json'}]}}

    def _token(self, body):
        with self._lock:
            self.tokens += 1
        catalog = []
        for service, (prefix, _paths) in SERVICES.items():
            url = self.url + prefix.replace('{project}', ADMIN_PROJECT)
            catalog.append({
                'type': service, 'name': service, 'id': uuid.uuid4().hex,
                'endpoints': [{'id': uuid.uuid4().hex, 'interface': iface,
                               'region': REGION, 'region_id': REGION,
                               'url': url}
                              for iface in ('public', 'internal',
                                            'admin')]})
        expires = datetime.datetime.utcnow() + datetime.timedelta(hours=1)
        token = {'token': {
            'methods': ['password'],
            'expires_at': expires.strftime('%Y-%m-%dT%H:%M:%S.000000Z'),
            'issued_at': datetime.datetime.utcnow().strftime(
                '%Y-%m-%dT%H:%M:%S.000000Z'),
            'user': {'id': 'ceilometer', 'name': 'ceilometer',
                     'domain': {'id': 'default', 'name': 'Default'}},
            'project': {'id': ADMIN_PROJECT, 'name': 'service',
                        'domain': {'id': 'default', 'name': 'Default'}},
            'roles': [{'id': 'admin', 'name': 'admin'}],
            'catalog': catalog}}
        return 201, {'X-Subject-Token': uuid.uuid4().hex}, token

    def _page(self, service, prefix, item_path, collection, query):
        limit = int(query.get('limit', ['1000'])[0])
        marker = query.get('marker', [None])[0]
        with self._lock:
            if not marker:  # a listing begins
                self._hiding[collection] = self._hide_next.pop(collection,
                                                               set())
            left_out = self.hidden | self._hiding.get(collection, set())
            items = [i for i in self.collections[collection]
                     if i['id'] not in left_out]
        start = 0
        if marker:
            ids = [i['id'] for i in items]
            if marker not in ids:
                return 400, {}, {'badRequest': {
                    'code': 400, 'message': 'marker %s not found' % marker}}
            start = ids.index(marker) + 1
        page_number = start // limit + 1
        delay = self.delays.get(collection, {}).get(page_number)
        if delay:
            time.sleep(delay)
        status = self.failures.get(collection, {}).get(page_number)
        if status:
            return status, {}, {'error': 'simulated failure of page %d'
                                % page_number}
        page = items[start:start + limit]
        body = {collection: page}
        if len(page) == limit and start + limit < len(items):
            next_query = {k: v[0] for k, v in query.items()}
            next_query.update(limit=limit, marker=page[-1]['id'])
            if service == 'image':
                body['next'] = '/v2/images?' + urllib.parse.urlencode(
                    next_query)
            else:
                body['%s_links' % collection] = [{
                    'rel': 'next', 'href': '%s%s/%s?%s' % (
                        self.url, prefix, item_path,
                        urllib.parse.urlencode(next_query))}]
        return 200, {}, body


class _Handler(http.server.BaseHTTPRequestHandler):
    cloud = None
    protocol_version = 'HTTP/1.1'

    def _serve(self, method):
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        status, headers, reply = self.cloud.handle(
            method, parsed.path, urllib.parse.parse_qs(parsed.query), body)
        data = json.dumps(reply).encode('utf-8')
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def do_GET(self):
        self._serve('GET')

    def do_POST(self):
        self._serve('POST')

    def log_message(self, fmt, *args):
        pass
