// GNU-only calls live here: a _GNU_SOURCE define in cSettings does not reach Swift's importer.
#define _GNU_SOURCE
#include <sched.h>
#include "CNetlinkShim.h"

int cshim_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }
