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
"""SCS-0412: the JSON Ceilometer's http publisher posts.

Samples are ``Sample.as_dict()``, events ``Event.serialize()``; a batch is
their JSON array. The outbox stores each item already encoded the way
``json.dumps`` encodes it, so the body is byte for byte what
``ceilometer.publisher.http`` would have sent for the same items.
"""

from scs_publisher import formats


class CeilometerFormat(formats.Format):
    content_type = 'application/json'

    def render(self, item):
        return item.payload
