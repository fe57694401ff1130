package wg

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
)

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
	tunDev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("create tun device %s: %w", name, err)
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

// Close stops serving the control socket (removing its file) and closes the
// device, which deletes the TUN link and with it its addresses and routes.
func (d *userspaceDevice) Close() error {
	err := d.uapi.Close()
	d.dev.Close()
	if err != nil {
		return fmt.Errorf("close control socket: %w", err)
	}
	return nil
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
