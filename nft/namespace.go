package nft

import (
	"fmt"

	"github.com/edgefw/edgefw/internal/bootid"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Namespace identifies the network namespace this Kernel talks to, as a
// netfilter socket opened there sees it: its cookie, and the inode of the
// namespace the socket belongs to (SIOCGSKNS), which is the namespace
// whose generation Generation reads.
func (k *netlinkKernel) Namespace() (Namespace, error) {
	boot, err := bootid.Read()
	if err != nil {
		return Namespace{}, err
	}
	ns := Namespace{Boot: boot}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: k.netns})
	if err != nil {
		return Namespace{}, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	defer c.Close()
	sock, err := newNetlinkSocket(c)
	if err != nil {
		return Namespace{}, err
	}
	err = sock.control(func(fd int) error {
		// Linux 5.14 and later; without it there is no Namespace, and so
		// no Mark: applies read the table every time.
		cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		if err != nil {
			return fmt.Errorf("SO_NETNS_COOKIE: %w", err)
		}
		nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
		if err != nil {
			return fmt.Errorf("SIOCGSKNS: %w", err)
		}
		defer unix.Close(nsfd)
		var st unix.Stat_t
		if err := unix.Fstat(nsfd, &st); err != nil {
			return err
		}
		ns.Cookie, ns.Dev, ns.Inode = cookie, st.Dev, st.Ino
		return nil
	})
	return ns, err
}
