/* error.c — the error table's text and the per-thread last-error message. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_message[512];

const char *kvt_strerror(int code)
{
    switch (code) {
#define KVT_X_TEXT(name, value, msg) \
    case value:                      \
        return msg;
        KVT_ERROR_TABLE(KVT_X_TEXT)
#undef KVT_X_TEXT
    }
    return "unknown kvtier error code";
}

const char *kvt_error_name(int code)
{
    switch (code) {
#define KVT_X_NAME(name, value, msg) \
    case value:                      \
        return #name;
        KVT_ERROR_TABLE(KVT_X_NAME)
#undef KVT_X_NAME
    }
    return NULL;
}

const char *kvt_last_error(void)
{
    return last_message[0] ? last_message : "no error";
}

void kvt__err_clear(void)
{
    last_message[0] = '\0';
}

static void record(int code, int errno_value, const char *fmt, va_list ap)
{
    int used = snprintf(last_message, sizeof last_message, "%s: ", kvt_strerror(code));
    if (used < 0 || (size_t)used >= sizeof last_message)
        return;
    int more = vsnprintf(last_message + used, sizeof last_message - (size_t)used, fmt, ap);
    if (more < 0)
        return;
    used += more;
    if (errno_value && (size_t)used < sizeof last_message)
        snprintf(last_message + used, sizeof last_message - (size_t)used, " (%s)",
                 strerror(errno_value));
}

int kvt__err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(code, 0, fmt, ap);
    va_end(ap);
    return code;
}

int kvt__err_errno(int code, int errno_value, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(code, errno_value, fmt, ap);
    va_end(ap);
    return code;
}
