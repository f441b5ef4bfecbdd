// Thin wrappers over what Swift's importer cannot reach directly: libmnl's function-like macros,
// GNU-only calls (setns), and a few kernel constants defined as expressions.
#ifndef C_NETLINK_SHIM_H
#define C_NETLINK_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/vfs.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/veth.h>
#include <linux/neighbour.h>
#include <linux/ip.h>
#include <libmnl/libmnl.h>

/// Aligned size of a netlink attribute header / length.
static inline size_t cshim_nla_align(size_t len) { return (size_t)MNL_ALIGN(len); }

static inline uint16_t cshim_nla_f_nested(void) { return NLA_F_NESTED; }
static inline uint16_t cshim_nla_type_mask(void) { return (uint16_t)NLA_TYPE_MASK; }

/// Moves the calling thread into the network namespace open at `fd`. Returns 0 or -1 with errno.
int cshim_setns_net(int fd);

#endif
