# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

extensions = [
    'openstackdocstheme',
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
]

# The sample file, generated from the options at every build.
config_generator_config_file = (
    '../../etc/scs_publisher/scs-publisher-config-generator.conf')
sample_config_basename = '_static/scs_publisher'


openstackdocs_repo_name = 'scs/scs_publisher'
openstackdocs_use_storyboard = False
openstackdocs_auto_name = False
openstackdocs_bug_project = 'scs_publisher'
openstackdocs_bug_tag = ''

project = 'scs_publisher'
copyright = '2026, Sovereign Cloud Stack contributors'
master_doc = 'index'
exclude_patterns = []
pygments_style = 'native'
html_theme = 'openstackdocs'
