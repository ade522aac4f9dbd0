/* error.h — setting the calling thread's error message. */
#ifndef KVT_ERROR_H
#define KVT_ERROR_H

#include "kvtier.h"

/* Records `code` with a printf-style detail as this thread's last error and
 * returns code, so that failures read `return kvt__err(KVT_ESIZE, "...")`. */
int kvt__err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, appending strerror(errno_value). */
int kvt__err_errno(int code, int errno_value, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Clears this thread's message (at the start of each public call). */
void kvt__err_clear(void);

#endif
