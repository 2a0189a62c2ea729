#!/usr/bin/env bash
# Cluster mode over Apache Pulsar (bench/cluster.sh: latency across nodes, publishes/s,
# transport alone, replay; beside Redis and the LMDB store). The broker: 4.0.x standalone,
# started by tests/integration/pulsar_broker.py.
#
#   bench/pulsar.sh [RATE] [SECONDS] [SUBS] [UPDATES]
name=Pulsar
label=pulsar
broker_url() { echo "$broker?topic=$1"; }
broker_start_s=300
warm_updates=30000
source "$(dirname "$0")/cluster.sh"
