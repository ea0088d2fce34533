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
"""Notifications in the shapes nova and cinder send, for the demo, the
tests and the benchmarks.

The payloads carry the fields Ceilometer's stock event definitions and
meter definitions read (unversioned nova notifications, cinder's volume
notifications). :func:`message` wraps a payload the way oslo.messaging
hands a notification to Ceilometer's endpoints; :func:`send` puts it on a
real bus with ``oslo_messaging.Notifier``.
"""

import datetime
import random
import uuid

FLAVORS = [
    # name, vcpus, memory_mb, root_gb
    ('SCS-1V-4', 1, 4096, 10),
    ('SCS-2V-8', 2, 8192, 20),
    ('SCS-4V-16', 4, 16384, 40),
]
VOLUME_TYPES = ['__DEFAULT__', 'ssd', 'hdd']


def _iso(when):
    return when.strftime('%Y-%m-%d %H:%M:%S.%f')


def message(event_type, payload, publisher_id, when, message_id=None):
    """A notification as oslo.messaging's batch listener hands it over."""
    return {
        'ctxt': {'request_id': 'req-%s' % uuid.uuid4(),
                 'project_id': payload.get('tenant_id'),
                 'user_id': payload.get('user_id')},
        'publisher_id': publisher_id,
        'event_type': event_type,
        'priority': 'INFO',
        'payload': payload,
        'metadata': {'message_id': message_id or str(uuid.uuid4()),
                     'timestamp': _iso(when)},
    }


def volume_payload(volume_id, project_id, user_id, size, volume_type,
                   created_at, status='available'):
    return {
        'volume_id': volume_id, 'tenant_id': project_id,
        'user_id': user_id, 'size': size, 'volume_type': volume_type,
        'status': status, 'display_name': 'vol-%s' % volume_id[:8],
        'availability_zone': 'nova', 'host': 'cinder-volume@lvm#lvm',
        'created_at': _iso(created_at), 'replication_status': None,
        'glance_metadata': [], 'volume_attachment': [],
        'snapshot_id': None, 'metadata': [],
    }


def instance_payload(instance_id, project_id, user_id, flavor, created_at,
                     state='active', deleted_at=''):
    name, vcpus, memory_mb, root_gb = flavor
    return {
        'instance_id': instance_id, 'tenant_id': project_id,
        'user_id': user_id, 'display_name': 'vm-%s' % instance_id[:8],
        'instance_type': name, 'instance_type_id': name,
        'instance_flavor_id': name, 'vcpus': vcpus,
        'memory_mb': memory_mb, 'root_gb': root_gb, 'disk_gb': root_gb,
        'ephemeral_gb': 0, 'state': state, 'state_description': '',
        'host': 'compute-1', 'node': 'compute-1',
        'availability_zone': 'nova', 'created_at': _iso(created_at),
        'launched_at': _iso(created_at), 'deleted_at': deleted_at,
        'terminated_at': deleted_at, 'image_ref': str(uuid.uuid4()),
        'image_meta': {'org.openstack__1__os_distro': 'debian'},
        'metadata': {}, 'architecture': 'x86_64', 'os_type': 'linux',
    }


def volume_lifecycle(rng, start, project_id, user_id):
    """create.start/end, maybe a resize, delete.start/end of one volume."""
    volume_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    size = rng.choice([1, 10, 20, 100])
    vtype = rng.choice(VOLUME_TYPES)
    when = start
    out = []
    for step in ('create.start', 'create.end'):
        out.append(message('volume.' + step, volume_payload(
            volume_id, project_id, user_id, size, vtype, start,
            'creating' if step == 'create.start' else 'available'),
            'volume.cinder-volume', when))
        when += datetime.timedelta(seconds=2)
    if rng.random() < 0.3:
        size *= 2
        for step in ('resize.start', 'resize.end'):
            when += datetime.timedelta(minutes=rng.randint(5, 600))
            out.append(message('volume.' + step, volume_payload(
                volume_id, project_id, user_id, size, vtype, start),
                'volume.cinder-volume', when))
    for step in ('delete.start', 'delete.end'):
        when += datetime.timedelta(minutes=rng.randint(5, 600))
        out.append(message('volume.' + step, volume_payload(
            volume_id, project_id, user_id, size, vtype, start,
            'deleting'), 'volume.cinder-volume', when))
    return out


def instance_lifecycle(rng, start, project_id, user_id):
    """create.start/end and delete.start/end of one nova instance."""
    instance_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    flavor = rng.choice(FLAVORS)
    when = start
    out = []
    for step, state in (('create.start', 'building'),
                        ('create.end', 'active')):
        out.append(message('compute.instance.' + step, instance_payload(
            instance_id, project_id, user_id, flavor, start, state),
            'compute.compute-1', when))
        when += datetime.timedelta(seconds=20)
    when += datetime.timedelta(minutes=rng.randint(5, 6000))
    for step, state in (('delete.start', 'active'),
                        ('delete.end', 'deleted')):
        out.append(message('compute.instance.' + step, instance_payload(
            instance_id, project_id, user_id, flavor, start, state,
            _iso(when) if state == 'deleted' else ''),
            'compute.compute-1', when))
        when += datetime.timedelta(seconds=3)
    return out


def notifications(count, seed=0, start=None, projects=3):
    """About ``count`` cinder- and nova-style notifications, in lifecycle
    order per resource, interleaved across resources."""
    rng = random.Random(seed)
    start = start or datetime.datetime(2026, 12, 1, 8, 0, 0)
    project_ids = ['%032x' % rng.getrandbits(128) for _ in range(projects)]
    out = []
    while len(out) < count:
        project = rng.choice(project_ids)
        user = '%032x' % rng.getrandbits(128)
        born = start + datetime.timedelta(minutes=rng.randint(0, 3000))
        if rng.random() < 0.5:
            out.extend(volume_lifecycle(rng, born, project, user))
        else:
            out.extend(instance_lifecycle(rng, born, project, user))
    out = out[:count]
    out.sort(key=lambda m: m['metadata']['timestamp'])
    return out


def send(notifier, msg):
    """Put ``msg`` on the bus with an ``oslo_messaging.Notifier``. The bus
    gives it a new message_id and timestamp, as a real service would."""
    notifier.prepare(publisher_id=msg['publisher_id']).info(
        msg['ctxt'], msg['event_type'], msg['payload'])
