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
"""A small cloud over simulated days, with a known ground truth.

Resources of every shipped type are created, resized and deleted; what
happens becomes the notifications nova, cinder, glance and neutron send
(in the shapes Ceilometer's stock event and meter definitions read), and
every ``poll_interval`` the polling agent's ``telemetry.polling``
notifications: stock meters (``volume.size``, ``image.size``,
``storage.objects.size``) and the inventory pollsters' complete listings
(``scs.inventory.<type>`` samples closed by a ``scs.inventory.cycle``
marker). Then the trouble a real bus brings: notifications dropped,
delivered twice, sent twice under new ids, and reordered.

:attr:`Scenario.truth` says what really happened; :attr:`Scenario.lost`
which lifecycle facts no notification told (so only reconciliation can
recover them, within one polling interval).
"""

import dataclasses
import datetime
import os
import random
import uuid

from ceilometer.publisher import utils as publisher_utils
from ceilometer import sample as sample_mod

from scs_publisher import observations
from scs_publisher import simulation

TYPES = ('instance', 'volume', 'volume_snapshot', 'volume_backup', 'image',
         'floating_ip')
EPOCH = datetime.datetime(1970, 1, 1)
POLLING_BATCH = 50  # [polling] batch_size


@dataclasses.dataclass
class Truth:
    resource_type: str
    resource_id: str
    project_id: str
    user_id: str
    start: float
    end: float | None
    #: ``(at, attributes)``: the attributes from ``at`` on.
    segments: list


def _dt(epoch):
    return EPOCH + datetime.timedelta(seconds=epoch)


def _iso(epoch):
    return _dt(epoch).strftime('%Y-%m-%d %H:%M:%S.%f')


class Scenario:
    """Build with :meth:`build`; then :attr:`deliveries` is the list of
    notification batches to hand to the agent, in delivery order."""

    def __init__(self, seed=0, resources=200, days=2.0, poll_interval=3600,
                 drop_rate=0.05, duplicate_rate=0.05, reorder_window=20,
                 projects=4, start=datetime.datetime(2026, 12, 1),
                 telemetry_secret='change this for valid signing'):
        self.rng = random.Random(seed)
        self.resources = resources
        self.poll_interval = poll_interval
        self.begin = (start - EPOCH).total_seconds()
        self.horizon = self.begin + days * 86400
        self.drop_rate = drop_rate
        self.duplicate_rate = duplicate_rate
        self.reorder_window = reorder_window
        self.secret = telemetry_secret
        self.projects = ['%032x' % self.rng.getrandbits(128)
                         for _ in range(projects)]
        self.truth = {}
        #: ``(resource_id, 'start'|'end'|('change', at))`` not told by any
        #: delivered notification.
        self.lost = set()
        #: project -> [(at, bytes)] as polled.
        self.storage = {p: [] for p in self.projects}
        self.dropped = 0
        self.duplicated = 0
        self.deliveries = []

    # -- the ground truth ------------------------------------------------

    def build(self):
        lifecycle = []  # (at, message, fact)
        for _ in range(self.resources):
            rtype = self.rng.choice(TYPES)
            lifecycle += self._resource(rtype)
        messages = self._trouble(sorted(lifecycle, key=lambda m: m[0]))
        polling = self._polling()
        merged = sorted(messages + polling, key=lambda m: m[0])
        merged = self._reorder(merged)
        batch = []
        for _at, message in merged:
            batch.append(message)
            if len(batch) == 25:
                self.deliveries.append(batch)
                batch = []
        if batch:
            self.deliveries.append(batch)
        return self

    def _uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _resource(self, rtype):
        rng = self.rng
        project = rng.choice(self.projects)
        user = '%032x' % rng.getrandbits(128)
        rid = self._uuid()
        # Every resource lives at least two polling intervals, and every
        # deletion leaves three cycles before the horizon, so a lost
        # delete can be found.
        last = self.horizon - 4 * self.poll_interval
        start = round(rng.uniform(self.begin, last - 2 * self.poll_interval))
        end = None
        if rng.random() < 0.7:
            end = round(rng.uniform(start + 2 * self.poll_interval, last))
        attrs = self._attributes(rtype)
        segments = [(start, attrs)]
        if rtype in ('instance', 'volume') and rng.random() < 0.4:
            until = end or last
            change = round(rng.uniform(start + self.poll_interval / 2,
                                       until - self.poll_interval / 2))
            segments.append((change, self._resized(rtype, attrs)))
        self.truth[rid] = Truth(rtype, rid, project, user, start, end,
                                segments)
        maker = getattr(self, '_%s_messages' % rtype)
        return maker(self.truth[rid])

    def _attributes(self, rtype):
        rng = self.rng
        if rtype == 'instance':
            name, vcpus, memory_mb, root_gb = rng.choice(simulation.FLAVORS)
            return {'flavor': name, 'vcpus': vcpus, 'memory_mb': memory_mb,
                    'root_gb': root_gb, 'ephemeral_gb': 0,
                    'state': 'active'}
        if rtype == 'volume':
            return {'size': rng.choice([1, 10, 20, 100]),
                    'volume_type': rng.choice(simulation.VOLUME_TYPES)}
        if rtype in ('volume_snapshot', 'volume_backup'):
            return {'size': rng.choice([1, 10, 20]),
                    'volume_id': self._uuid()}
        if rtype == 'image':
            return {'size': rng.choice([2, 8, 40]) * 1024 ** 3}
        return {}

    def _resized(self, rtype, attrs):
        if rtype == 'volume':
            return dict(attrs, size=attrs['size'] * 2)
        flavors = [f for f in simulation.FLAVORS if f[0] != attrs['flavor']]
        name, vcpus, memory_mb, root_gb = self.rng.choice(flavors)
        return dict(attrs, flavor=name, vcpus=vcpus, memory_mb=memory_mb,
                    root_gb=root_gb)

    # -- notifications, in the services' shapes ---------------------------

    def _message(self, event_type, payload, publisher, at, fact, truth):
        message = simulation.message(event_type, payload, publisher, _dt(at))
        # neutron's events read the project from the context
        message['ctxt']['tenant_id'] = truth.project_id
        message['ctxt']['user_id'] = truth.user_id
        return (at, message, (truth.resource_id, fact))

    def _instance_messages(self, truth):
        def payload(attrs, state, deleted=''):
            flavor = (attrs['flavor'], attrs['vcpus'], attrs['memory_mb'],
                      attrs['root_gb'])
            return simulation.instance_payload(
                truth.resource_id, truth.project_id, truth.user_id, flavor,
                _dt(truth.start), state, deleted)
        out = [self._message('compute.instance.create.end',
                             payload(truth.segments[0][1], 'active'),
                             'compute.compute-1', truth.start, 'start',
                             truth)]
        for at, attrs in truth.segments[1:]:
            out.append(self._message(
                'compute.instance.finish_resize.end',
                payload(attrs, 'active'), 'compute.compute-1', at,
                ('change', at), truth))
        if truth.end:
            out.append(self._message(
                'compute.instance.delete.end',
                payload(truth.segments[-1][1], 'deleted', _iso(truth.end)),
                'compute.compute-1', truth.end, 'end', truth))
        return out

    def _volume_messages(self, truth):
        def payload(attrs, status):
            return simulation.volume_payload(
                truth.resource_id, truth.project_id, truth.user_id,
                attrs['size'], attrs['volume_type'], _dt(truth.start),
                status)
        out = [self._message('volume.create.end',
                             payload(truth.segments[0][1], 'available'),
                             'volume.cinder-volume', truth.start, 'start',
                             truth)]
        for at, attrs in truth.segments[1:]:
            out.append(self._message('volume.resize.end',
                                     payload(attrs, 'available'),
                                     'volume.cinder-volume', at,
                                     ('change', at), truth))
        if truth.end:
            out.append(self._message(
                'volume.delete.end', payload(truth.segments[-1][1],
                                             'deleting'),
                'volume.cinder-volume', truth.end, 'end', truth))
        return out

    def _volume_snapshot_messages(self, truth):
        attrs = truth.segments[0][1]
        payload = {'snapshot_id': truth.resource_id,
                   'volume_id': attrs['volume_id'],
                   'volume_size': attrs['size'],
                   'tenant_id': truth.project_id, 'user_id': truth.user_id,
                   'display_name': 'snap', 'status': 'available',
                   'created_at': _iso(truth.start),
                   'availability_zone': 'nova'}
        out = [self._message('snapshot.create.end', payload,
                             'snapshot.cinder-volume', truth.start, 'start',
                             truth)]
        if truth.end:
            out.append(self._message(
                'snapshot.delete.end', dict(payload, status='deleting'),
                'snapshot.cinder-volume', truth.end, 'end', truth))
        return out

    def _volume_backup_messages(self, truth):
        attrs = truth.segments[0][1]
        payload = {'backup_id': truth.resource_id,
                   'volume_id': attrs['volume_id'], 'size': attrs['size'],
                   'tenant_id': truth.project_id, 'user_id': truth.user_id,
                   'display_name': 'backup', 'status': 'available',
                   'created_at': _iso(truth.start)}
        out = [self._message('backup.create.end', payload,
                             'backup.cinder-backup', truth.start, 'start',
                             truth)]
        if truth.end:
            out.append(self._message(
                'backup.delete.end', dict(payload, status='deleted'),
                'backup.cinder-backup', truth.end, 'end', truth))
        return out

    def _image_messages(self, truth):
        payload = {'id': truth.resource_id, 'owner': truth.project_id,
                   'name': 'image', 'status': 'active',
                   'size': truth.segments[0][1]['size'],
                   'created_at': _iso(truth.start), 'deleted_at': None,
                   'disk_format': 'raw', 'container_format': 'bare'}
        out = [self._message('image.upload', payload, 'image.glance',
                             truth.start, 'start', truth)]
        if truth.end:
            out.append(self._message(
                'image.delete', dict(payload, status='deleted',
                                     deleted_at=_iso(truth.end)),
                'image.glance', truth.end, 'end', truth))
        return out

    def _floating_ip_messages(self, truth):
        fip = {'id': truth.resource_id, 'tenant_id': truth.project_id,
               'project_id': truth.project_id,
               'floating_ip_address': '203.0.113.%d'
               % self.rng.randint(1, 254),
               'floating_network_id': 'public', 'status': 'DOWN'}
        out = [self._message('floatingip.create.end', {'floatingip': fip},
                             'network.neutron', truth.start, 'start',
                             truth)]
        if truth.end:
            out.append(self._message(
                'floatingip.delete.end',
                {'floatingip_id': truth.resource_id, 'floatingip': fip},
                'network.neutron', truth.end, 'end', truth))
        return out

    # -- what a bus does to them -------------------------------------------

    def _trouble(self, lifecycle):
        rng = self.rng
        out = []
        for at, message, fact in lifecycle:
            if rng.random() < self.drop_rate:
                self.lost.add(fact)
                self.dropped += 1
                continue
            out.append((at, message))
            roll = rng.random()
            if roll < 2 * self.duplicate_rate:
                self.duplicated += 1
            if roll < self.duplicate_rate:
                # RabbitMQ redelivers: the same message, a little later.
                out.append((at + rng.uniform(1, 600), message))
            elif roll < 2 * self.duplicate_rate:
                # The service sends it again: a new message id.
                again = dict(message, metadata=dict(
                    message['metadata'], message_id=self._uuid()))
                out.append((at + rng.uniform(1, 600), again))
        return out

    def _reorder(self, messages):
        """Shuffle within windows: several agents, requeues."""
        out = []
        for start in range(0, len(messages), self.reorder_window):
            window = messages[start:start + self.reorder_window]
            self.rng.shuffle(window)
            out.extend(window)
        return out

    # -- polling -----------------------------------------------------------

    def _polling(self):
        out = []
        storage = {p: self.rng.randint(0, 10) * 1024 ** 3
                   for p in self.projects}
        at = self.begin + self.poll_interval
        while at < self.horizon:
            samples = []
            for rtype in TYPES:
                listed = [t for t in self.truth.values()
                          if t.resource_type == rtype and t.start <= at
                          and (t.end is None or t.end > at)]
                samples += self._cycle(rtype, listed, at)
            for project in self.projects:
                if self.rng.random() < 0.5:
                    storage[project] = max(0, storage[project] + self.rng
                                           .randint(-2, 4) * 1024 ** 3)
                self.storage[project].append((at, storage[project]))
                samples.append(self._sample(
                    'storage.objects.size', 'B', storage[project], project,
                    None, project, at, {}))
            for start in range(0, len(samples), POLLING_BATCH):
                out.append((at, self._polling_message(
                    samples[start:start + POLLING_BATCH], at)))
            at += self.poll_interval
        return out

    def _cycle(self, rtype, listed, at):
        cycle_id = '%s-%d' % (rtype, at)
        samples = []
        for truth in listed:
            attrs = self._attributes_at(truth, at)
            metadata = dict(attrs, created_at=_iso(truth.start))
            metadata[observations.CYCLE_KEY] = cycle_id
            volume = attrs.get('size', 1)
            samples.append(self._sample(
                'scs.inventory.%s' % rtype, 'resource', volume,
                truth.project_id, truth.user_id, truth.resource_id, at,
                metadata))
            stock = {'volume': ('volume.size', 'GiB'),
                     'image': ('image.size', 'B')}.get(rtype)
            if stock:
                samples.append(self._sample(
                    stock[0], stock[1], attrs['size'], truth.project_id,
                    truth.user_id, truth.resource_id, at,
                    {k: v for k, v in attrs.items() if k != 'size'}))
        samples.append(self._sample(
            observations.CYCLE_METER, 'resource', len(listed), None, None,
            cycle_id, at + 60, {'resource_type': rtype,
                                'listed': len(listed),
                                'started_at': _iso(at)}))
        return samples

    @staticmethod
    def _attributes_at(truth, at):
        current = truth.segments[0][1]
        for since, attrs in truth.segments:
            if since <= at:
                current = attrs
        return current

    def _sample(self, meter, unit, volume, project, user, resource_id, at,
                metadata):
        sample = sample_mod.Sample(
            name=meter, type='gauge', unit=unit, volume=volume,
            user_id=user, project_id=project, resource_id=resource_id,
            timestamp=_dt(at).isoformat(), resource_metadata=metadata,
            source='openstack', id=self._uuid())
        return publisher_utils.meter_message_from_counter(sample,
                                                          self.secret)

    def _polling_message(self, samples, at):
        message = simulation.message('telemetry.polling', {
            'samples': samples}, 'ceilometer.polling', _dt(at))
        message['priority'] = 'SAMPLE'
        return message


def feed_share(config_file, directory, scenario_args, share, shares):
    """Feed every ``shares``-th batch of a scenario, from batch ``share``
    on, through the real pipelines with ``scs://``: one of several agents.

    Runs in a process of its own (tests start it with multiprocessing);
    the scenario is rebuilt from the same arguments, so every process
    agrees on it.
    """
    from scs_publisher import inprocess
    os.makedirs(directory, exist_ok=True)
    conf = inprocess.prepare_conf([config_file], directory, ['scs://'])
    pipelines = inprocess.Pipelines(conf)
    scenario = Scenario(**scenario_args).build()
    for batch in scenario.deliveries[share::shares]:
        pipelines.feed(batch)
