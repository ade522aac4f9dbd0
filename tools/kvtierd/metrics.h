/* metrics.h — kvtierd's Prometheus endpoint (libmicrohttpd, loopback only). */
#ifndef KVTIERD_METRICS_H
#define KVTIERD_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <pthread.h>

#include "kvtier.h"

typedef struct kvtierd_metrics kvtierd_metrics;

/* Serves GET /metrics on 127.0.0.1:port: the store's statistics and the
 * server's. NULL with a reason in err on failure (or when built without
 * libmicrohttpd). */
kvtierd_metrics *kvtierd_metrics_start(kvt_store *store, kvt_server *srv, uint16_t port,
                                       char *err, size_t err_len);
/* NULL is fine. */
void kvtierd_metrics_stop(kvtierd_metrics *m);

#endif
