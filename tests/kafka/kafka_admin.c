/* SPDX-License-Identifier: MIT
 * kafka_admin.c - the small Kafka client the Kafka tests and benchmark use to wait for a
 * broker, create topics with a given layout, write messages that are not Quicksilver's,
 * and read a topic's offsets (librdkafka; plaintext listeners only).
 *
 *   kafka_admin BROKERS ready TIMEOUT_MS
 *   kafka_admin BROKERS create TOPIC PARTITIONS [key=value…]   (topic configuration)
 *   kafka_admin BROKERS produce TOPIC VALUE [KEY]               (acks=all)
 *   kafka_admin BROKERS offsets TOPIC                            (prints "low high")
 * Exit status 0 on success; errors go to stderr.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rd_kafka_t *client(const char *brokers, rd_kafka_type_t type)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "acks", "all", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr)) ||
        (type == RD_KAFKA_CONSUMER &&
         rd_kafka_conf_set(conf, "group.id", "kafka_admin", errstr, sizeof(errstr)))) {
        fprintf(stderr, "kafka_admin: %s\n", errstr);
        exit(2);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka_admin: %s\n", errstr);
        exit(2);
    }
    return rk;
}

static int ready(const char *brokers, int timeout_ms)
{
    rd_kafka_t *rk = client(brokers, RD_KAFKA_PRODUCER);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    int ok = !e && md && md->broker_cnt > 0;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    if (!ok)
        fprintf(stderr, "kafka_admin: %s\n", rd_kafka_err2str(e));
    return ok ? 0 : 1;
}

static int create(const char *brokers, const char *topic, int partitions, char **kv, int n)
{
    char errstr[512];
    rd_kafka_t *rk = client(brokers, RD_KAFKA_PRODUCER);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, errstr, sizeof(errstr));
    if (!nt) {
        fprintf(stderr, "kafka_admin: %s\n", errstr);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char *eq = strchr(kv[i], '=');
        if (!eq)
            continue;
        *eq = '\0';
        rd_kafka_NewTopic_set_config(nt, kv[i], eq + 1);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = 1;
    if (!ev) {
        fprintf(stderr, "kafka_admin: no answer\n");
    } else if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "kafka_admin: %s\n", rd_kafka_event_error_string(ev));
    } else {
        size_t cnt = 0;
        const rd_kafka_topic_result_t **r =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        if (cnt && rd_kafka_topic_result_error(r[0]))
            fprintf(stderr, "kafka_admin: %s\n", rd_kafka_topic_result_error_string(r[0]));
        else
            rc = 0;
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
    return rc;
}

static int delivered = -1;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    delivered = m->err ? 0 : 1;
    if (m->err)
        fprintf(stderr, "kafka_admin: %s\n", rd_kafka_err2str(m->err));
}

static int produce(const char *brokers, const char *topic, const char *value, const char *key)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "acks", "all", errstr, sizeof(errstr));
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka_admin: %s\n", errstr);
        return 2;
    }
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE((void *)value, strlen(value)),
        RD_KAFKA_V_KEY((void *)key, key ? strlen(key) : 0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (!e)
        rd_kafka_flush(rk, 30000);
    rd_kafka_destroy(rk);
    if (e)
        fprintf(stderr, "kafka_admin: %s\n", rd_kafka_err2str(e));
    return !e && delivered == 1 ? 0 : 1;
}

static int offsets(const char *brokers, const char *topic)
{
    rd_kafka_t *rk = client(brokers, RD_KAFKA_CONSUMER);
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, 30000);
    rd_kafka_destroy(rk);
    if (e) {
        fprintf(stderr, "kafka_admin: %s\n", rd_kafka_err2str(e));
        return 1;
    }
    printf("%lld %lld\n", (long long)lo, (long long)hi);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[2], "ready"))
        return ready(argv[1], atoi(argv[3]));
    if (argc >= 5 && !strcmp(argv[2], "create"))
        return create(argv[1], argv[3], atoi(argv[4]), argv + 5, argc - 5);
    if (argc >= 5 && !strcmp(argv[2], "produce"))
        return produce(argv[1], argv[3], argv[4], argc > 5 ? argv[5] : NULL);
    if (argc >= 4 && !strcmp(argv[2], "offsets"))
        return offsets(argv[1], argv[3]);
    fprintf(stderr, "usage: kafka_admin BROKERS ready TIMEOUT_MS | create TOPIC PARTITIONS "
                    "[key=value…] | produce TOPIC VALUE [KEY] | offsets TOPIC\n");
    return 2;
}
