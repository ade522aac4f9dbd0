/* recv_spin.h — receiving the next packet of a connection by spinning a
 * moment before sleeping. */
#ifndef KVT_SHARED_RECV_SPIN_H
#define KVT_SHARED_RECV_SPIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How long a client waiting for its reply, and a server thread waiting for
 * its client's next request, poll the socket before they block. On an idle
 * VM a blocked thread's wakeup took 50-60 us, more than a whole 64-key
 * lookup through the socket takes when both sides are awake (about 10 us);
 * 50 us of spinning per request is the price of not paying it twice. */
#define KVT__RECV_SPIN_NS 50000u

/* recv(fd, buf, cap, flags | MSG_DONTWAIT) until a packet arrives, an error
 * other than EAGAIN/EINTR, or spin_ns pass: then -1 with errno EAGAIN. */
ssize_t kvt__recv_spin(int fd, void *buf, size_t cap, int flags, uint64_t spin_ns);

#endif
