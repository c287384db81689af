/* bench_mqtt.c: `axon bench mqtt://...`: publish/subscribe fan-out on any
 * MQTT 3.1.1 or 5.0 broker, with the codec of proto/mqtt.  Publisher i
 * publishes on topic PREFIX<i>, which -S subscribers take at QoS -q.  A
 * message is complete when every subscriber has it and, at QoS 1 and 2,
 * when the broker finished its side (PUBACK; PUBREC, PUBREL, PUBCOMP). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "proto/mqtt/mqtt.h"

typedef struct mq {
    bench_worker *w;
    ax_conn *h;
    bconn *pub;    /* a publisher's bconn; NULL for a subscriber */
    int topic;     /* global publisher index */
    uint64_t next; /* subscriber: the seq expected next */
    bool ready;
    uint8_t *out; /* publisher: PUBLISH packets gathered for one write */
    size_t out_len, out_cap;
} mq;

typedef struct mq_wd {
    mq *subs;
    mq *pubs;
    int nsubs;
    uint8_t *buf;
    size_t cap;
} mq_wd;

static unsigned version(const bench_worker *w)
{
    return w->cfg->mqtt_version == 5 ? AX_MQTT_V5 : AX_MQTT_V311;
}

static int send_pkt(mq *m, const ax_mqtt_packet *pkt)
{
    mq_wd *wd = m->w->pd;
    size_t n = ax_mqtt_encode(wd->buf, wd->cap, version(m->w), pkt);
    if (n == 0 || n > wd->cap) return AX_EINVAL;
    bench_bytes(m->w, 0, n);
    int rc = ax_conn_write(m->h, wd->buf, n);
    return rc < 0 ? rc : 0;
}

static int send_ack(mq *m, unsigned type, uint16_t id)
{
    uint8_t b[AX_MQTT_ACK_MAX];
    size_t n = ax_mqtt_encode_ack(b, version(m->w), type, id, 0);
    int rc = ax_conn_write(m->h, b, n);
    return rc < 0 ? rc : 0;
}

static void mq_open(ax_conn *h)
{
    mq *m = ax_conn_data(h);
    char id[64];
    int n = snprintf(id, sizeof id, "axb-%d-%s%d-%d", (int)getpid(), m->pub ? "p" : "s", m->topic,
                     (int)(m - (m->pub ? ((mq_wd *)m->w->pd)->pubs : ((mq_wd *)m->w->pd)->subs)));
    ax_mqtt_packet pkt = {.type = AX_MQTT_CONNECT};
    pkt.u.connect.clean = true;
    pkt.u.connect.keep_alive = 0; /* no pings needed, however long the run */
    pkt.u.connect.client_id = (ax_mqtt_str){id, (size_t)n};
    if (send_pkt(m, &pkt) != 0) bench_error(m->w, "mqtt: CONNECT failed");
}

static void on_connack(mq *m, const ax_mqtt_packet *pkt)
{
    if (pkt->u.connack.code != 0) {
        char why[64];
        snprintf(why, sizeof why, "mqtt: CONNACK refused (0x%02x)", pkt->u.connack.code);
        bench_error(m->w, why);
        ax_conn_close(m->h);
        return;
    }
    if (m->pub) {
        bench_conn_up(m->pub);
        bench_pump(m->pub);
        return;
    }
    char filter[600];
    int n = snprintf(filter, sizeof filter, "%s%d", m->w->cfg->topic, m->topic);
    ax_mqtt_sub sub = {.filter = {filter, (size_t)n}, .qos = (uint8_t)m->w->cfg->qos};
    ax_mqtt_packet sp = {.type = AX_MQTT_SUBSCRIBE, .flags = 2};
    sp.u.subscribe.packet_id = 1;
    sp.u.subscribe.subs = &sub;
    sp.u.subscribe.n_subs = 1;
    if (send_pkt(m, &sp) != 0) bench_error(m->w, "mqtt: SUBSCRIBE failed");
}

/* The seq in flight whose packet id is `id` (ids are seq % 65535 + 1). */
static uint64_t seq_of(const bconn *c, uint16_t id)
{
    uint64_t base = c->low % 65535u;
    uint64_t off = ((uint64_t)id - 1 + 65535u - base) % 65535u;
    return c->low + off;
}

static void on_publish(mq *m, const ax_mqtt_packet *pkt)
{
    const ax_mqtt_publish *p = &pkt->u.publish;
    if (p->qos == 1) (void)send_ack(m, AX_MQTT_PUBACK, p->packet_id);
    if (p->qos == 2) (void)send_ack(m, AX_MQTT_PUBREC, p->packet_id);
    int pub;
    uint64_t seq, ts;
    if (!bench_payload_parse((const char *)p->payload, p->payload_len, &pub, &seq, &ts) ||
        pub != m->topic) {
        bench_error(m->w, "mqtt: a message that is not ours");
        return;
    }
    bconn *c = bench_pub(m->w, pub);
    if (c) bench_deliver(c, &m->next, seq, ts);
}

static void on_packet(mq *m, const ax_mqtt_packet *pkt)
{
    switch (pkt->type) {
    case AX_MQTT_CONNACK:
        on_connack(m, pkt);
        break;
    case AX_MQTT_SUBACK:
        if (pkt->u.suback.n_codes < 1 || pkt->u.suback.codes[0] >= 0x80) {
            bench_error(m->w, "mqtt: SUBSCRIBE refused");
        } else if (!m->ready) {
            m->ready = true;
            bench_sub_ready(m->w);
        }
        break;
    case AX_MQTT_PUBLISH:
        on_publish(m, pkt);
        break;
    case AX_MQTT_PUBACK:
    case AX_MQTT_PUBCOMP:
        if (m->pub) bench_acked(m->pub, seq_of(m->pub, pkt->u.ack.packet_id));
        break;
    case AX_MQTT_PUBREC:
        (void)send_ack(m, AX_MQTT_PUBREL, pkt->u.ack.packet_id);
        break;
    case AX_MQTT_PUBREL:
        (void)send_ack(m, AX_MQTT_PUBCOMP, pkt->u.ack.packet_id);
        break;
    case AX_MQTT_DISCONNECT:
        bench_error(m->w, "mqtt: the broker sent DISCONNECT");
        break;
    default:
        break;
    }
}

static size_t mq_data(ax_conn *h, const char *data, size_t len)
{
    mq *m = ax_conn_data(h);
    size_t used = 0;
    bench_bytes(m->w, len, 0);
    while (used < len) {
        ax_mqtt_packet pkt;
        int n = ax_mqtt_parse((const uint8_t *)data + used, len - used, version(m->w),
                              AX_MQTT_MAX_PACKET, &pkt);
        if (n == AX_MQTT_INCOMPLETE) break;
        if (n < 0) {
            bench_error(m->w, "mqtt: a malformed packet");
            ax_conn_abort(h, AX_EPROTO);
            return len;
        }
        on_packet(m, &pkt);
        used += (size_t)n;
        if (!m->h) break; /* closed meanwhile */
    }
    return used;
}

static void mq_close(ax_conn *h, int reason)
{
    mq *m = ax_conn_data(h);
    if (!m) return;
    m->h = NULL;
    bool was = m->pub ? m->pub->up : m->ready;
    char why[96];
    snprintf(why, sizeof why, "%s%s: %s", m->pub ? "" : "subscriber ", was ? "closed" : "connect",
             ax_strerror(reason ? reason : AX_EOF));
    bool quiet = was && !bench_running();
    if (m->pub) {
        bench_conn_down(m->pub, quiet ? NULL : why);
        return;
    }
    if (!quiet) bench_error(m->w, why);
    if (!m->ready) m->w->subs_wanted--;
}

static const ax_conn_cbs mq_cbs = {.on_open = mq_open, .on_data = mq_data, .on_close = mq_close};

static void mq_connect(bench_worker *w, mq *m)
{
    ax_conn_opts co = {.tls = w->cfg->tls_ctx, .output_cap = 64u << 20};
    int err = 0;
    m->h = ax_connect(w->loop, w->cfg->target, &mq_cbs, &co, m, &err);
    if (m->h) return;
    char why[96];
    snprintf(why, sizeof why, "connect: %s", ax_strerror(err));
    if (m->pub) {
        bench_conn_down(m->pub, why);
    } else {
        bench_error(w, why);
        w->subs_wanted--;
    }
}

static int mq_setup(bench_worker *w)
{
    const bench_cfg *cfg = w->cfg;
    mq_wd *wd = calloc(1, sizeof(*wd));
    if (!wd) return AX_ENOMEM;
    w->pd = wd;
    wd->cap = cfg->size + strlen(cfg->topic) + 256;
    wd->buf = malloc(wd->cap);
    wd->nsubs = w->nconns * cfg->subs;
    wd->subs = calloc((size_t)wd->nsubs + 1, sizeof(*wd->subs));
    wd->pubs = calloc((size_t)w->nconns + 1, sizeof(*wd->pubs));
    if (!wd->buf || !wd->subs || !wd->pubs) return AX_ENOMEM;
    w->subs_wanted = wd->nsubs;
    for (int i = 0; i < wd->nsubs; i++) {
        mq *m = &wd->subs[i];
        *m = (mq){.w = w, .topic = w->conns[i / cfg->subs]->index};
        mq_connect(w, m);
    }
    for (int i = 0; i < w->nconns; i++) {
        mq *m = &wd->pubs[i];
        *m = (mq){.w = w, .pub = w->conns[i], .topic = w->conns[i]->index};
        w->conns[i]->pd = m;
        mq_connect(w, m);
    }
    return 0;
}

/* Gather the packet in m->out (mq_flush writes it). */
static int gather(mq *m, const ax_mqtt_packet *pkt)
{
    size_t n = ax_mqtt_encode(NULL, 0, version(m->w), pkt);
    if (n == 0) return AX_EINVAL;
    if (m->out_len + n > m->out_cap) {
        size_t cap = (m->out_len + n) * 2;
        uint8_t *b = realloc(m->out, cap);
        if (!b) return AX_ENOMEM;
        m->out = b;
        m->out_cap = cap;
    }
    ax_mqtt_encode(m->out + m->out_len, m->out_cap - m->out_len, version(m->w), pkt);
    m->out_len += n;
    bench_bytes(m->w, 0, n);
    return 0;
}

static void mq_flush(bconn *c)
{
    mq *m = c->pd;
    if (!m || !m->out_len || !m->h) return;
    if (ax_conn_write(m->h, m->out, m->out_len) < 0) bench_error(m->w, "send: the write failed");
    m->out_len = 0;
}

static int mq_send(bconn *c, uint64_t seq, uint64_t ts)
{
    mq *m = c->pd;
    const bench_cfg *cfg = c->w->cfg;
    char topic[600], payload[1024];
    char *pl = cfg->size + 64 <= sizeof payload ? payload : malloc(cfg->size + 64);
    if (!pl) return AX_ENOMEM;
    int tn = snprintf(topic, sizeof topic, "%s%d", cfg->topic, c->index);
    size_t n = bench_payload(pl, cfg->size + 64, cfg->size, c->index, seq, ts);
    ax_mqtt_packet pkt = {.type = AX_MQTT_PUBLISH, .flags = (uint8_t)(cfg->qos << 1)};
    pkt.u.publish.qos = (uint8_t)cfg->qos;
    pkt.u.publish.packet_id = cfg->qos ? (uint16_t)(seq % 65535u + 1) : 0;
    pkt.u.publish.topic = (ax_mqtt_str){topic, (size_t)tn};
    pkt.u.publish.payload = (const uint8_t *)pl;
    pkt.u.publish.payload_len = n;
    int rc = gather(m, &pkt);
    if (pl != payload) free(pl);
    return rc;
}

static void mq_shutdown(bench_worker *w)
{
    mq_wd *wd = w->pd;
    if (!wd) return;
    for (int i = 0; i < wd->nsubs + w->nconns; i++) {
        mq *m = i < wd->nsubs ? &wd->subs[i] : &wd->pubs[i - wd->nsubs];
        if (!m->h) continue;
        ax_conn_set_data(m->h, NULL);
        ax_conn_abort(m->h, 0);
        m->h = NULL;
    }
    for (int i = 0; i < w->nconns; i++) {
        w->conns[i]->pd = NULL;
        free(wd->pubs[i].out);
    }
    free(wd->subs);
    free(wd->pubs);
    free(wd->buf);
    free(wd);
    w->pd = NULL;
}

const bench_ops bench_mqtt_ops = {
    .setup = mq_setup, .send = mq_send, .flush = mq_flush, .shutdown = mq_shutdown, .fanout = true};
