#!/bin/bash
# DevStack plugin for scs_publisher: installs the package into DevStack's
# Python environment and adds scs:// to Ceilometer's pipelines.

function install_scs_publisher {
    setup_develop "$SCS_PUBLISHER_DIR"
}

function add_scs_publisher_to_pipeline {
    # YAML-aware: append "scs://" to the publishers of every sink.
    local file=$1
    python3 - "$file" <<'PYEOF'
import sys
import yaml
path = sys.argv[1]
with open(path) as f:
    data = yaml.safe_load(f)
for sink in data.get('sinks', []):
    publishers = sink.setdefault('publishers', [])
    if 'scs://' not in publishers:
        publishers.append('scs://')
with open(path, 'w') as f:
    yaml.safe_dump(data, f, default_flow_style=False)
PYEOF
}

function configure_scs_publisher {
    local conf=$CEILOMETER_CONF
    local pipeline
    for pipeline in "$CEILOMETER_CONF_DIR/pipeline.yaml" \
                    "$CEILOMETER_CONF_DIR/event_pipeline.yaml"; do
        if [[ -f $pipeline ]]; then
            add_scs_publisher_to_pipeline "$pipeline"
        fi
    done
    iniset "$conf" notification ack_on_event_error False
    iniset "$conf" scs_publisher state_path "$SCS_PUBLISHER_STATE_PATH"
    sudo install -d -o "$STACK_USER" -m 0700 "$SCS_PUBLISHER_STATE_PATH"
    if [[ -n $SCS_PUBLISHER_SINK_URL ]]; then
        iniset "$conf" scs_publisher sinks billing
        iniset "$conf" sink:billing url "$SCS_PUBLISHER_SINK_URL"
        iniset "$conf" sink:billing format "$SCS_PUBLISHER_SINK_FORMAT"
        iniset "$conf" sink:billing content "$SCS_PUBLISHER_SINK_CONTENT"
        if [[ -n $SCS_PUBLISHER_SINK_SECRET ]]; then
            iniset "$conf" sink:billing secret "$SCS_PUBLISHER_SINK_SECRET"
        fi
    fi
}

function cleanup_scs_publisher {
    sudo rm -rf "$SCS_PUBLISHER_STATE_PATH"
}

if is_service_enabled ceilometer-anotification; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing scs_publisher"
        install_scs_publisher
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring scs_publisher"
        configure_scs_publisher
    fi
    if [[ "$1" == "clean" ]]; then
        cleanup_scs_publisher
    fi
fi
