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
"""Build the configured sinks from ``[scs_publisher] sinks`` and their
``[sink:NAME]`` groups, with errors that name the group and the option."""

import dataclasses
import fnmatch
import urllib.parse

from oslo_config import cfg
import stevedore

from scs_publisher import opts as opts_mod

SINK_NAMESPACE = 'scs_publisher.sinks'
FORMAT_NAMESPACE = 'scs_publisher.formats'


@dataclasses.dataclass
class ConfiguredSink:
    name: str
    driver: object
    format: object
    content: str
    batch_size: int
    retry_schedule: list
    max_retry_age: int
    event_types: list
    projects: frozenset

    def wants(self, item):
        """Whether the sink's filters let ``item`` through."""
        if self.projects and item.project_id not in self.projects:
            return False
        if self.event_types == ['*']:
            return True  # the default; spares a match per item
        return any(fnmatch.fnmatchcase(item.event_type, pattern)
                   for pattern in self.event_types)


def _value(options, group, name):
    try:
        return options[name]
    except (cfg.ConfigFileValueError, ValueError) as exc:
        raise opts_mod.ConfigError('[%s] %s: %s' % (group, name, exc))


def _plugin(namespace, name, group, option):
    try:
        return stevedore.DriverManager(namespace, name).driver
    except stevedore.exception.NoMatches:
        known = sorted(stevedore.ExtensionManager(namespace).names())
        raise opts_mod.ConfigError(
            '[%s] %s: unknown %r (known: %s)'
            % (group, option, name, ', '.join(known)))


def load_sink(conf, name):
    """A :class:`ConfiguredSink`; raises ``ConfigError``. No network I/O."""
    group = opts_mod.sink_group(name)
    conf.register_opts(opts_mod.SINK_OPTS, group=group)
    options = conf[group]
    url_text = _value(options, group, 'url')
    if not url_text:
        raise opts_mod.ConfigError(
            '[%s] url: required (sink "%s" is listed in [%s] sinks)'
            % (group, name, opts_mod.GROUP))
    url = urllib.parse.urlsplit(url_text)
    driver_cls = _plugin(SINK_NAMESPACE, url.scheme, group, 'url scheme')
    conf.register_opts(driver_cls.OPTS, group=group)
    for opt in list(opts_mod.SINK_OPTS) + list(driver_cls.OPTS):
        _value(options, group, opt.dest)
    format_cls = _plugin(FORMAT_NAMESPACE, options.format, group, 'format')
    schedule = list(options.retry_schedule)
    if not schedule:
        raise opts_mod.ConfigError('[%s] retry_schedule: needs at least one '
                                   'step' % group)
    driver = driver_cls(name, options, url)
    return ConfiguredSink(
        name=name, driver=driver,
        format=format_cls(conf[opts_mod.GROUP].source),
        content=options.content, batch_size=options.batch_size,
        retry_schedule=schedule, max_retry_age=options.max_retry_age,
        event_types=list(options.event_types) or ['*'],
        projects=frozenset(options.projects))


def load_sinks(conf):
    """All configured sinks, and the errors of those that cannot load.

    :returns: ``(sinks, errors)``: a list of :class:`ConfiguredSink` and a
        list of messages naming the group and option.
    """
    opts_mod.register_publisher_opts(conf)
    names = conf[opts_mod.GROUP].sinks
    loaded, errors = [], []
    seen = set()
    for name in names:
        if name in seen:
            errors.append('[%s] sinks: "%s" is listed twice'
                          % (opts_mod.GROUP, name))
            continue
        seen.add(name)
        try:
            loaded.append(load_sink(conf, name))
        except opts_mod.ConfigError as exc:
            errors.append(str(exc))
    return loaded, errors
