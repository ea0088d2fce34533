#!/bin/bash
# DevStack plugin for scs_publisher: installs the package into DevStack's
# Python environment, adds scs:// to Ceilometer's pipelines and the
# inventory pollsters to its polling, configures a "billing" sink and runs
# the reference receiver as the service "scs-receiver".

SCS_PUBLISHER_EDIT_YAML=$SCS_PUBLISHER_DIR/devstack/files/edit_ceilometer_yaml.py

function install_scs_publisher {
    setup_develop "$SCS_PUBLISHER_DIR"
}

function scs_publisher_sink_url {
    if [[ -n $SCS_PUBLISHER_SINK_URL ]]; then
        echo "$SCS_PUBLISHER_SINK_URL"
    elif is_service_enabled scs-receiver; then
        echo "http://127.0.0.1:$SCS_PUBLISHER_RECEIVER_PORT/"
    fi
}

function configure_scs_publisher {
    local conf=$CEILOMETER_CONF
    local python=${PYTHON:-python3}
    local url
    url=$(scs_publisher_sink_url)

    if [[ -f $CEILOMETER_CONF_DIR/pipeline.yaml ]]; then
        "$python" "$SCS_PUBLISHER_EDIT_YAML" pipeline \
            "$CEILOMETER_CONF_DIR/pipeline.yaml"
    fi
    if [[ -f $CEILOMETER_CONF_DIR/event_pipeline.yaml ]]; then
        "$python" "$SCS_PUBLISHER_EDIT_YAML" event-pipeline \
            "$CEILOMETER_CONF_DIR/event_pipeline.yaml"
    fi
    if [[ -f $CEILOMETER_CONF_DIR/polling.yaml ]]; then
        "$python" "$SCS_PUBLISHER_EDIT_YAML" polling \
            "$CEILOMETER_CONF_DIR/polling.yaml" \
            "$SCS_PUBLISHER_INVENTORY_INTERVAL"
    fi

    # Requeue an event the ledger could not take instead of dropping it.
    iniset "$conf" notification ack_on_event_error False
    iniset "$conf" scs_publisher state_path "$SCS_PUBLISHER_STATE_PATH"
    sudo install -d -o "$STACK_USER" -m 0700 "$SCS_PUBLISHER_STATE_PATH"
    if [[ -n $url ]]; then
        iniset "$conf" scs_publisher sinks billing
        iniset "$conf" sink:billing url "$url"
        iniset "$conf" sink:billing format "$SCS_PUBLISHER_SINK_FORMAT"
        iniset "$conf" sink:billing content "$SCS_PUBLISHER_SINK_CONTENT"
        if [[ -n $SCS_PUBLISHER_SINK_SECRET ]]; then
            iniset "$conf" sink:billing secret "$SCS_PUBLISHER_SINK_SECRET"
        fi
    fi
}

function start_scs_publisher {
    if is_service_enabled scs-receiver; then
        local secret_arg=""
        if [[ -n $SCS_PUBLISHER_SINK_SECRET ]]; then
            secret_arg="--secret $SCS_PUBLISHER_SINK_SECRET"
        fi
        run_process scs-receiver "$(get_python_exec_prefix)/scs-publisher receive --port $SCS_PUBLISHER_RECEIVER_PORT --store $SCS_PUBLISHER_RECEIVER_STORE --quiet $secret_arg"
    fi
}

function stop_scs_publisher {
    if is_service_enabled scs-receiver; then
        stop_process scs-receiver
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
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting the scs_publisher reference receiver"
        start_scs_publisher
    fi
    if [[ "$1" == "unstack" ]]; then
        stop_scs_publisher
    fi
    if [[ "$1" == "clean" ]]; then
        cleanup_scs_publisher
    fi
fi
