// cnirun: a minimal CNI runtime on libcni (the library containerd, CRI-O
// and podman's CNI backend call plugins through), as cnitool is; Debian
// ships libcni's source (golang-github-appc-cni-dev) but no cnitool binary.
// cni-bridge's runtime test builds it with Debian's Go in GOPATH mode.
//
//	cnirun add|check|del NETWORK NETNS CONTAINERID [IFNAME]
//
// NETCONFPATH: the directory of .conflist files; CNI_PATH: the plugins;
// CNI_CACHE_DIR: libcni's result cache (where CHECK and DEL find ADD's
// result).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 5 {
		fmt.Fprintln(os.Stderr, "usage: cnirun add|check|del NETWORK NETNS CONTAINERID [IFNAME]")
		os.Exit(2)
	}
	cmd, name, netns, id := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	ifname := "eth0"
	if len(os.Args) > 5 {
		ifname = os.Args[5]
	}
	list, err := libcni.LoadConfList(os.Getenv("NETCONFPATH"), name)
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: ifname}
	ctx := context.Background()
	switch cmd {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		if err := res.Print(); err != nil {
			fail(err)
		}
	case "check":
		err = cni.CheckNetworkList(ctx, list, rt)
	case "del":
		err = cni.DelNetworkList(ctx, list, rt)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fail(err)
	}
}
