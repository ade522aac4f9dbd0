/* metrics.c — kvtierd's /metrics: kvt_stats_prometheus of the store, then
 * the server's own counters, over Debian's libmicrohttpd. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if KVTIERD_HAVE_MHD
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

struct kvtierd_metrics {
    struct MHD_Daemon *daemon;
    kvt_store *store;
    kvt_server *srv;
};

typedef struct text {
    char *buf;
    size_t len, cap;
} text;

/* "server.clients" -> kvtier_server_clients; "client.<pid>.pins" ->
 * kvtier_client_pins{pid="<pid>"}. */
static void add_server_stat(const char *name, uint64_t value, void *user)
{
    text *t = user;
    char line[192];
    int l;
    int pid, off = 0;
    if (sscanf(name, "client.%d.%n", &pid, &off) == 1 && off > 0)
        l = snprintf(line, sizeof line, "kvtier_client_%s{pid=\"%d\"} %llu\n", name + off, pid,
                     (unsigned long long)value);
    else
        l = snprintf(line, sizeof line, "kvtier_%s %llu\n", name, (unsigned long long)value);
    for (char *p = line + 7; *p && *p != ' ' && *p != '{'; p++)
        if (*p == '.')
            *p = '_';
    if (l > 0 && (size_t)l < sizeof line && t->len + (size_t)l < t->cap) {
        memcpy(t->buf + t->len, line, (size_t)l);
        t->len += (size_t)l;
    }
}

static char *render(struct kvtierd_metrics *m, size_t *len)
{
    int need = kvt_stats_prometheus(m->store, NULL, 0);
    if (need < 0)
        return NULL;
    text t = {.cap = (size_t)need + 1024 + 128 * 2 * 256}; /* + per client lines */
    t.buf = malloc(t.cap);
    if (!t.buf)
        return NULL;
    int got = kvt_stats_prometheus(m->store, t.buf, t.cap - 512);
    if (got < 0 || (size_t)got >= t.cap - 512) { /* grew meanwhile: cut at a line */
        char *nl = got < 0 ? NULL : strrchr(t.buf, '\n');
        t.len = nl ? (size_t)(nl - t.buf) + 1 : 0;
    } else {
        t.len = (size_t)got;
    }
    kvt_serve_stats(m->srv, add_server_stat, &t);
    *len = t.len;
    return t.buf;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    struct kvtierd_metrics *m = cls;
    struct MHD_Response *r;
    unsigned status = MHD_HTTP_OK;
    if (strcmp(method, "GET") != 0) {
        static const char msg[] = "only GET\n";
        r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
    } else if (strcmp(url, "/metrics") != 0) {
        static const char msg[] = "kvtierd: see /metrics\n";
        r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_FOUND;
    } else {
        size_t len = 0;
        char *body = render(m, &len);
        if (!body) {
            static const char msg[] = "statistics unavailable\n";
            r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg,
                                                MHD_RESPMEM_PERSISTENT);
            status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        } else {
            r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
            MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
        }
    }
    if (!r)
        return MHD_NO;
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

kvtierd_metrics *kvtierd_metrics_start(kvt_store *store, kvt_server *srv, uint16_t port,
                                       char *err, size_t err_len)
{
    struct kvtierd_metrics *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    m->store = store;
    m->srv = srv;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    m->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, port, NULL, NULL, answer, m,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                 MHD_OPTION_CONNECTION_LIMIT, 16u,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!m->daemon) {
        snprintf(err, err_len, "libmicrohttpd could not listen (port in use?)");
        free(m);
        return NULL;
    }
    return m;
}

void kvtierd_metrics_stop(kvtierd_metrics *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->daemon);
    free(m);
}

#else

kvtierd_metrics *kvtierd_metrics_start(kvt_store *store, kvt_server *srv, uint16_t port,
                                       char *err, size_t err_len)
{
    snprintf(err, err_len, "built without libmicrohttpd (install libmicrohttpd-dev, reconfigure)");
    return NULL;
}

void kvtierd_metrics_stop(kvtierd_metrics *m)
{
}
#endif
