/* recv_spin.c — receiving the next packet by spinning a moment before
 * sleeping (recv_spin.h says why). */
#include "shared/recv_spin.h"

#include <errno.h>
#include <sys/socket.h>

#include "clock.h"

ssize_t kvt__recv_spin(int fd, void *buf, size_t cap, int flags, uint64_t spin_ns)
{
    const uint64_t end = kvt__monotonic_ns() + spin_ns;
    for (;;) {
        ssize_t r = recv(fd, buf, cap, flags | MSG_DONTWAIT);
        if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return r;
        if (kvt__monotonic_ns() >= end) {
            errno = EAGAIN;
            return -1;
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}
