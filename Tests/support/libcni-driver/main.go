// A minimal CNI runtime on top of libcni (Debian's golang-github-appc-cni-dev), the library
// the kubelet's CRI runtimes use: it loads a conflist from a directory and runs ADD, CHECK or
// DEL of the whole chain, with libcni's own result cache, exactly as a runtime would.
//
//	libcni-driver add|check|del CONFDIR NETWORK CONTAINERID NETNS IFNAME [CAPABILITY_ARGS_JSON]
//
// CNI_PATH and the cache directory (CNI_CACHE_DIR) come from the environment.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if len(os.Args) < 7 {
		fmt.Fprintln(os.Stderr, "usage: libcni-driver add|check|del CONFDIR NETWORK CONTAINERID NETNS IFNAME [CAPABILITY_ARGS_JSON]")
		os.Exit(2)
	}
	verb, confDir, network, containerID, netns, ifname := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	list, err := libcni.LoadConfList(confDir, network)
	if err != nil {
		fail(err)
	}
	rt := &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       netns,
		IfName:      ifname,
		Args:        [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", containerID}},
	}
	if len(os.Args) > 7 {
		if err := json.Unmarshal([]byte(os.Args[7]), &rt.CapabilityArgs); err != nil {
			fail(err)
		}
	}
	cni := libcni.NewCNIConfigWithCacheDir(strings.Split(os.Getenv("CNI_PATH"), ":"), os.Getenv("CNI_CACHE_DIR"), nil)
	ctx := context.Background()
	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		if err := result.Print(); err != nil {
			fail(err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown verb %q", verb))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "libcni-driver:", err)
	os.Exit(1)
}
