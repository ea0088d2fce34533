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
"""Inventory pollsters: complete listings of billable resources.

One pollster per billable type, for ``ceilometer-polling`` with the central
namespace. Each run lists every resource of its type in every project,
following the API's paging to the last page, and yields

* one sample ``scs.inventory.<type>`` per resource, its billing attributes
  and ``created_at`` in ``resource_metadata``, with the cycle's id
  (:data:`observations.CYCLE_KEY`); then
* one completeness marker ``scs.inventory.cycle`` saying how many were
  listed, from when.

A page that fails or times out raises out of the listing: the polling
manager logs it, and no marker is sent, so the cycle never counts as
complete and nothing is ended by it. They authenticate as Ceilometer's
central agent does (``[service_credentials]``, a keystoneauth session,
endpoints of ``[service_credentials] interface`` and ``region_name`` from
the catalog, found by Ceilometer's ``endpoint`` discovery).
"""

import threading
import urllib.parse
import uuid

from ceilometer import keystone_client
from ceilometer.polling import plugin_base
from ceilometer import sample
from oslo_config import cfg
from oslo_log import log
from oslo_utils import timeutils

from scs_publisher import observations

LOG = log.getLogger(__name__)

GROUP = 'scs_inventory'
OPTS = [
    cfg.IntOpt('page_size',
               default=500, min=1, max=10000,
               help='Resources asked for per API request (the "limit" '
                    'parameter). Larger pages mean fewer requests and '
                    'more memory per request on the API side.'),
    cfg.FloatOpt('request_timeout',
                 default=60, min=1,
                 help='Seconds one API request may take. A request that '
                      'times out fails the listing: no completeness '
                      'marker is sent for that cycle.'),
    cfg.IntOpt('max_parallel_listings',
               default=2, min=1,
               help='Listings one polling process runs at the same time '
                    '(Ceilometer may run pollsters in parallel, see '
                    '[polling] threads_to_process_pollsters); the others '
                    'wait. Bounds the load on the APIs.'),
    cfg.StrOpt('image_service_type',
               default='image',
               help='Glance service type in the catalog. Nova, Cinder and '
                    'Neutron use Ceilometer\'s [service_types] options.'),
]

CYCLE_UNIT = 'resource'
_SLOTS = {}
_SLOTS_LOCK = threading.Lock()


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


def _slots(conf):
    """The process-wide bound on simultaneous listings."""
    size = conf[GROUP].max_parallel_listings
    with _SLOTS_LOCK:
        if size not in _SLOTS:
            _SLOTS[size] = threading.BoundedSemaphore(size)
        return _SLOTS[size]


class ListingFailed(Exception):
    """A page could not be read: this cycle is incomplete."""


class InventoryPollster(plugin_base.PollsterBase):
    """Lists one resource type; subclasses say which and how."""

    #: The billable type, as in billing_resources.yaml.
    resource_type = None
    #: Path under the service endpoint, and the key of the list in the
    #: answer.
    path = None
    collection = None
    #: Query parameters of every page besides limit and marker.
    query = {'all_tenants': 'True'}
    #: Extra request headers (API microversions).
    headers = {}

    def setup_environment(self):
        register_opts(self.conf)
        self._session = None

    @property
    def session(self):
        """A keystoneauth session of [service_credentials], kept: its
        token serves every cycle until it expires."""
        if self._session is None:
            self._session = keystone_client.get_session(
                self.conf, timeout=self.conf[GROUP].request_timeout)
        return self._session

    @property
    def meter(self):
        return 'scs.inventory.%s' % self.resource_type

    def service_type(self):
        raise NotImplementedError

    @property
    def default_discovery(self):
        return 'endpoint:%s' % self.service_type()

    def get_samples(self, manager, cache, resources):
        for endpoint in resources:
            yield from self._cycle(endpoint)

    def _cycle(self, endpoint):
        cycle_id = '%s-%s' % (self.resource_type, uuid.uuid4())
        started = timeutils.utcnow().isoformat()
        listed = 0
        with _slots(self.conf):
            for item in self._pages(self.session, endpoint):
                listed += 1
                yield self._sample(item, cycle_id)
        LOG.info('Inventory cycle %s: %d %s listed', cycle_id, listed,
                 self.resource_type)
        yield sample.Sample(
            name=observations.CYCLE_METER, type=sample.TYPE_GAUGE,
            unit=CYCLE_UNIT, volume=listed, user_id=None, project_id=None,
            resource_id=cycle_id, resource_metadata={
                'resource_type': self.resource_type, 'listed': listed,
                'started_at': started, 'endpoint': endpoint})

    def _pages(self, session, endpoint):
        base = endpoint.rstrip('/') + '/'
        url = urllib.parse.urljoin(base, self.path)
        params = dict(self.query, limit=self.conf[GROUP].page_size)
        pages = 0
        while url:
            try:
                response = session.get(url, params=params,
                                       headers=self.headers,
                                       raise_exc=True)
                body = response.json()
                items = body[self.collection]
            except Exception as exc:
                raise ListingFailed('%s: page %d of %s failed: %s' % (
                    self.resource_type, pages + 1, url, exc)) from exc
            pages += 1
            yield from items
            url, params = self._next(body, base, items, params)

    def _next(self, body, base, items, params):
        """The next page's URL and parameters, or ``(None, None)``."""
        for link in body.get('%s_links' % self.collection) or ():
            if link.get('rel') == 'next':
                return link['href'], None  # the link carries the query
        return None, None

    def _sample(self, item, cycle_id):
        attributes = self.attributes(item)
        metadata = dict(attributes)
        metadata['created_at'] = item.get('created_at') or item.get(
            'created')
        metadata['status'] = item.get('status')
        metadata[observations.CYCLE_KEY] = cycle_id
        return sample.Sample(
            name=self.meter, type=sample.TYPE_GAUGE, unit=CYCLE_UNIT,
            volume=self.volume(item), user_id=item.get('user_id'),
            project_id=self.project_of(item), resource_id=item['id'],
            resource_metadata=metadata)

    def attributes(self, item):
        return {}

    def volume(self, item):
        return 1

    def project_of(self, item):
        return item.get('project_id') or item.get('tenant_id')


class InstancePollster(InventoryPollster):
    """Nova ``servers/detail``: every state, SHUTOFF and SHELVED too."""
    resource_type = 'instance'
    path = 'servers/detail'
    collection = 'servers'
    # 2.47 embeds the flavor (name, vcpus, ram, disk) in each server.
    headers = {'OpenStack-API-Version': 'compute 2.47',
               'X-OpenStack-Nova-API-Version': '2.47'}

    def service_type(self):
        return self.conf.service_types.nova

    def attributes(self, item):
        flavor = item.get('flavor') or {}
        return {'flavor': flavor.get('original_name'),
                'vcpus': flavor.get('vcpus'),
                'memory_mb': flavor.get('ram'),
                'root_gb': flavor.get('disk'),
                'ephemeral_gb': flavor.get('ephemeral'),
                'state': item.get('OS-EXT-STS:vm_state')}


class VolumePollster(InventoryPollster):
    """Cinder ``volumes/detail``."""
    resource_type = 'volume'
    path = 'volumes/detail'
    collection = 'volumes'

    def service_type(self):
        return self.conf.service_types.cinder

    def attributes(self, item):
        return {'size': item.get('size'),
                'volume_type': item.get('volume_type')}

    def volume(self, item):
        return item.get('size') or 0

    def project_of(self, item):
        return item.get('os-vol-tenant-attr:tenant_id')


class _VolumeCopyPollster(InventoryPollster):
    """Snapshots and backups: a size and the volume they copy."""

    def service_type(self):
        return self.conf.service_types.cinder

    def attributes(self, item):
        return {'size': item.get('size'), 'volume_id': item.get('volume_id')}

    def volume(self, item):
        return item.get('size') or 0


class SnapshotPollster(_VolumeCopyPollster):
    """Cinder ``snapshots/detail``."""
    resource_type = 'volume_snapshot'
    path = 'snapshots/detail'
    collection = 'snapshots'

    def project_of(self, item):
        return item.get('os-extended-snapshot-attributes:project_id')


class BackupPollster(_VolumeCopyPollster):
    """Cinder ``backups/detail`` (3.18 adds the project, 3.56 the user)."""
    resource_type = 'volume_backup'
    path = 'backups/detail'
    collection = 'backups'
    headers = {'OpenStack-API-Version': 'volume 3.56'}

    def project_of(self, item):
        return item.get('os-backup-project-attr:project_id')


class ImagePollster(InventoryPollster):
    """Glance v2 ``images`` with ``visibility=all``: for an admin, every
    project's images, private, shared and community ones too."""
    resource_type = 'image'
    path = 'v2/images'
    collection = 'images'
    query = {'visibility': 'all'}

    def service_type(self):
        return self.conf[GROUP].image_service_type

    def attributes(self, item):
        return {'size': item.get('size')}

    def volume(self, item):
        return item.get('size') or 0

    def project_of(self, item):
        return item.get('owner')

    def _next(self, body, base, items, params):
        # Glance answers a relative "next" (/v2/images?marker=...) that
        # carries the query.
        if body.get('next'):
            return urllib.parse.urljoin(base, body['next'].lstrip('/')), \
                None
        return None, None


class FloatingIPPollster(InventoryPollster):
    """Neutron ``v2.0/floatingips``: admin credentials see all projects."""
    resource_type = 'floating_ip'
    path = 'v2.0/floatingips'
    collection = 'floatingips'
    query = {}

    def service_type(self):
        return self.conf.service_types.neutron
