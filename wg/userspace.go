package wg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
)

// tunCloneDevice is the device tun.CreateTUN opens to create a TUN link.
const tunCloneDevice = "/dev/net/tun"

// userspace starts in-process WireGuard devices. It is the seam that lets unit
// tests exercise the userspace backend without /dev/net/tun.
type userspace interface {
	// Start creates the TUN link name with the given MTU and serves the
	// WireGuard configuration protocol on /var/run/wireguard/NAME.sock, where
	// wgctrl and wg(8) find it. Closing the result removes both.
	Start(name string, mtu int, log *slog.Logger) (io.Closer, error)
}

// goUserspace is the embedded wireguard-go implementation. The TUN device and
// the UDP sockets are created in the network namespace of the calling thread;
// edgefwd runs entirely inside one namespace, so nothing here switches
// namespaces.
type goUserspace struct{}

// userspaceDevice is a running wireguard-go device and its control socket.
type userspaceDevice struct {
	dev  *device.Device
	uapi net.Listener
}

// Start implements Links with netlink.
func (goUserspace) Start(name string, mtu int, log *slog.Logger) (io.Closer, error) {
	releaseBeforeDevice()
	tunDev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		device, _ := os.Stat(tunCloneDevice)
		return nil, tunCreateError(name, err, device)
	}
	// UAPIOpen refuses a socket that another live process serves: the socket
	// directory is shared by every network namespace, so a name clash with a
	// tunnel elsewhere is an error instead of a takeover.
	uapiFile, err := ipc.UAPIOpen(name)
	if err != nil {
		tunDev.Close()
		return nil, fmt.Errorf("open control socket of %s: %w", name, err)
	}
	dev := device.NewDevice(tunDev, conn.NewDefaultBind(), deviceLogger(log))
	uapi, err := ipc.UAPIListen(name, uapiFile)
	// UAPIListen duplicated the descriptor; ours is no longer needed.
	uapiFile.Close()
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("listen on control socket of %s: %w", name, err)
	}
	go func() {
		for {
			c, err := uapi.Accept()
			if err != nil {
				return // closed, or the socket file was deleted
			}
			go dev.IpcHandle(c)
		}
	}()
	return &userspaceDevice{dev: dev, uapi: uapi}, nil
}

// A wireguard-go device takes its packet buffers at once: a batch of
// conn.IdealBatchSize (128) buffers of 64 KiB for the TUN reader and for
// each of the bind's receivers (IPv4 and IPv6), 24 MiB in all, which it
// keeps for the device's life. The Go runtime zeroes memory it reuses but
// not memory it returned to the OS (MADV_DONTNEED gives zero pages), so
// buffers taken from the garbage of a large apply (a 100k set's) cost
// their 24 MiB of RSS at once, and buffers taken from released memory cost
// only the pages packets have used. So the freed memory is returned to the
// OS before a device is created: a full collection, which creating a
// device (at start-up or for a new tunnel) can afford.
func releaseBeforeDevice() {
	debug.FreeOSMemory()
}

// Close stops serving the control socket (removing its file) and closes the
// device, which deletes the TUN link and with it its addresses and routes.
func (d *userspaceDevice) Close() error {
	err := d.uapi.Close()
	d.dev.Close()
	// wireguard-go's UAPIListener.Close races with its own watcher of the
	// socket file: closing the inotify descriptor wakes the watcher, which
	// may close the cancel pipe before Close writes to it ("write |1: file
	// already closed"). The listener is closed either way.
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("close control socket: %w", err)
	}
	return nil
}

// tunDeniedAdvice is what to check when creating a TUN device is denied.
const tunDeniedAdvice = "check its mode: the kernel makes it 0666 crw-rw-rw- (devtmpfs, udev), " +
	"and a daemon without CAP_DAC_OVERRIDE, such as the packaged unit's User=edgefw, cannot open it otherwise; " +
	"a systemd unit needs PrivateDevices= off and DeviceAllow=" + tunCloneDevice + " rw; " +
	"creating the link needs CAP_NET_ADMIN"

// tunCreateError explains a failure of tun.CreateTUN. wireguard-go returns
// the bare errno of open(2) or of the TUNSETIFF ioctl, so a denial reads
// "permission denied" without naming the device or the cause. Fresh
// machines have been seen with /dev/net/tun at 0600, which only a process
// with CAP_DAC_OVERRIDE opens; the error says what to check. device is the
// node as found after the failure, nil if it could not be examined.
func tunCreateError(name string, err error, device fs.FileInfo) error {
	if !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("create tun device %s: %w", name, err)
	}
	found := ""
	if device != nil {
		found = "it is " + describeDeviceNode(device) + "; "
	}
	return fmt.Errorf("create tun device %s: %s: %w (%s%s)", name, tunCloneDevice, err, found, tunDeniedAdvice)
}

// describeDeviceNode shows a file's type, mode and owner as ls -ln does:
// "crw------- 0:0".
func describeDeviceNode(fi fs.FileInfo) string {
	kind := "-"
	switch mode := fi.Mode(); {
	case mode&fs.ModeCharDevice != 0:
		kind = "c"
	case mode&fs.ModeDevice != 0:
		kind = "b"
	case mode.IsDir():
		kind = "d"
	case mode&fs.ModeType != 0:
		kind = "?"
	}
	s := kind + fi.Mode().Perm().String()[1:]
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s += fmt.Sprintf(" %d:%d", st.Uid, st.Gid)
	}
	return s
}

// deviceLogger routes wireguard-go's printf-style log to slog. Its verbose
// stream (every handshake and keepalive) goes to debug; its errors, mostly
// transient send failures, to warn. wireguard-go names peers by an
// abbreviated public key and never logs private or preshared keys.
func deviceLogger(log *slog.Logger) *device.Logger {
	ctx := context.Background()
	return &device.Logger{
		Verbosef: func(format string, args ...any) {
			if log.Enabled(ctx, slog.LevelDebug) {
				log.Debug(fmt.Sprintf(format, args...))
			}
		},
		Errorf: func(format string, args ...any) {
			log.Warn(fmt.Sprintf(format, args...))
		},
	}
}
