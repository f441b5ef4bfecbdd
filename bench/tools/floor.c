/* The floor: the least a process can do for one pod, to show how far above it a plugin is.
 *
 *   floor add NETNS IFNAME HOSTVETH BRIDGE ADDRESS/PREFIX GATEWAY LEASEFILE
 *   floor del NETNS IFNAME LEASEFILE
 *
 * ADD: write the lease, create the veth pair with the peer inside the pod and the host end on the
 * bridge, then in the pod: link up, address, default route. DEL: delete the pod's interface and
 * the lease. No config parsing, no checks, no result: libmnl and a few system calls. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char buf[8192];
static unsigned seq;

static void die(const char *what) { perror(what); exit(1); }

static struct nlmsghdr *msg(int type, int flags) {
    struct nlmsghdr *n = mnl_nlmsg_put_header(buf);
    n->nlmsg_type = type;
    n->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    n->nlmsg_seq = ++seq;
    return n;
}

static void talk(struct mnl_socket *s, struct nlmsghdr *n, const char *what) {
    if (mnl_socket_sendto(s, n, n->nlmsg_len) < 0) die(what);
    int len = mnl_socket_recvfrom(s, buf, sizeof buf);
    if (len < 0 || mnl_cb_run(buf, len, seq, mnl_socket_get_portid(s), NULL, NULL) < 0) die(what);
}

static struct mnl_socket *open_socket(void) {
    struct mnl_socket *s = mnl_socket_open(NETLINK_ROUTE);
    if (!s || mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) die("socket");
    return s;
}

static struct mnl_socket *socket_in(int nsfd) {
    int home = open("/proc/thread-self/ns/net", O_RDONLY);
    if (setns(nsfd, CLONE_NEWNET) < 0) die("setns");
    struct mnl_socket *s = open_socket();
    if (setns(home, CLONE_NEWNET) < 0) die("setns home");
    close(home);
    return s;
}

int main(int argc, char **argv) {
    seq = time(NULL);
    if (argc == 9 && strcmp(argv[1], "add") == 0) {
        int ns = open(argv[2], O_RDONLY);
        int lease = open(argv[8], O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (ns < 0 || lease < 0) die("open");
        dprintf(lease, "floor\r\n%s", argv[3]);
        close(lease);
        struct mnl_socket *node = open_socket(), *pod = socket_in(ns);

        struct nlmsghdr *n = msg(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(n, sizeof *ifi);
        ifi->ifi_flags = ifi->ifi_change = IFF_UP;
        mnl_attr_put_strz(n, IFLA_IFNAME, argv[4]);
        mnl_attr_put_u32(n, IFLA_MASTER, if_nametoindex(argv[5]));
        struct nlattr *info = mnl_attr_nest_start(n, IFLA_LINKINFO);
        mnl_attr_put_strz(n, IFLA_INFO_KIND, "veth");
        struct nlattr *data = mnl_attr_nest_start(n, IFLA_INFO_DATA);
        struct nlattr *peer = mnl_attr_nest_start(n, VETH_INFO_PEER);
        n->nlmsg_len += MNL_ALIGN(sizeof(struct ifinfomsg));
        mnl_attr_put_strz(n, IFLA_IFNAME, argv[3]);
        mnl_attr_put_u32(n, IFLA_NET_NS_FD, ns);
        mnl_attr_nest_end(n, peer);
        mnl_attr_nest_end(n, data);
        mnl_attr_nest_end(n, info);
        talk(node, n, "create veth");

        n = msg(RTM_GETLINK, 0);
        n->nlmsg_flags = NLM_F_REQUEST;
        mnl_nlmsg_put_extra_header(n, sizeof(struct ifinfomsg));
        mnl_attr_put_strz(n, IFLA_IFNAME, argv[3]);
        if (mnl_socket_sendto(pod, n, n->nlmsg_len) < 0) die("getlink");
        if (mnl_socket_recvfrom(pod, buf, sizeof buf) < 0) die("getlink");
        int index = ((struct ifinfomsg *)mnl_nlmsg_get_payload((struct nlmsghdr *)buf))->ifi_index;

        n = msg(RTM_NEWLINK, 0);
        ifi = mnl_nlmsg_put_extra_header(n, sizeof *ifi);
        ifi->ifi_index = index;
        ifi->ifi_flags = ifi->ifi_change = IFF_UP;
        talk(pod, n, "link up");

        char *slash = strchr(argv[6], '/');
        *slash = 0;
        struct in_addr address, gateway;
        inet_pton(AF_INET, argv[6], &address);
        inet_pton(AF_INET, argv[7], &gateway);
        n = msg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(n, sizeof *ifa);
        ifa->ifa_family = AF_INET;
        ifa->ifa_prefixlen = atoi(slash + 1);
        ifa->ifa_index = index;
        mnl_attr_put(n, IFA_LOCAL, 4, &address);
        mnl_attr_put(n, IFA_ADDRESS, 4, &address);
        talk(pod, n, "address");

        n = msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        struct rtmsg *rt = mnl_nlmsg_put_extra_header(n, sizeof *rt);
        rt->rtm_family = AF_INET;
        rt->rtm_table = RT_TABLE_MAIN;
        rt->rtm_protocol = RTPROT_BOOT;
        rt->rtm_type = RTN_UNICAST;
        mnl_attr_put(n, RTA_GATEWAY, 4, &gateway);
        mnl_attr_put_u32(n, RTA_OIF, index);
        talk(pod, n, "route");
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "del") == 0) {
        int ns = open(argv[2], O_RDONLY);
        if (ns < 0) die("open");
        struct mnl_socket *pod = socket_in(ns);
        struct nlmsghdr *n = msg(RTM_DELLINK, 0);
        mnl_nlmsg_put_extra_header(n, sizeof(struct ifinfomsg));
        mnl_attr_put_strz(n, IFLA_IFNAME, argv[3]);
        talk(pod, n, "delete link");
        unlink(argv[4]);
        return 0;
    }
    fprintf(stderr, "usage: floor add NETNS IFNAME HOSTVETH BRIDGE ADDRESS/PREFIX GATEWAY LEASEFILE | floor del NETNS IFNAME LEASEFILE\n");
    return 2;
}
