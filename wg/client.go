package wg

import (
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Client is the part of *wgctrl.Client the Manager uses: reading a device and
// sending it a configuration. It is the seam that lets tests run the Manager
// against a fake instead of a kernel or userspace device.
//
// As in wgctrl, Device returns an error matching errors.Is(err,
// os.ErrNotExist) when no WireGuard device has that name, and in a Config a
// nil field means "leave it as it is".
type Client interface {
	// Devices lists every WireGuard device the client can see.
	Devices() ([]*wgtypes.Device, error)
	// Device reads one device: keys, listen port, peers and their state.
	Device(name string) (*wgtypes.Device, error)
	// ConfigureDevice applies cfg to the device; nil fields are left alone.
	ConfigureDevice(name string, cfg wgtypes.Config) error
	// Close releases the client's sockets.
	Close() error
}
