#!/usr/bin/env bash
# Cluster mode over Apache Kafka (bench/cluster.sh: latency across nodes, publishes/s,
# transport alone, replay; beside Redis and the LMDB store). The broker: 4.x in KRaft mode,
# one node, started by tests/integration/kafka_broker.py.
#
#   bench/kafka.sh [RATE] [SECONDS] [SUBS] [UPDATES]
#
# KAFKA_OPTIONS (e.g. fetch_wait=0) is added to every hub's Kafka URL.
name=Kafka
label=kafka
broker_url() { echo "kafka://kafka/?addr=$broker&topic=$1${KAFKA_OPTIONS:+&$KAFKA_OPTIONS}"; }
broker_start_s=120
# The JVM's compiler threads took 4.6 s of CPU during the first 100 000 publishes, 2 s during
# the next, 0.2 s from the 300 000th on.
warm_updates=300000
source "$(dirname "$0")/cluster.sh"
