// Package wg reconciles the WireGuard tunnels declared in a policy with the
// host: it creates the interfaces (kernel WireGuard when the module exists,
// the embedded userspace implementation otherwise), sets their keys,
// addresses, MTU and routes, and adds, changes and removes peers one by one
// so that changing one peer never resets another's session.
//
// The package keeps deciding apart from doing. Pure functions (diffPeers,
// wantEndpoint, routesFor, diffPrefixes) compute what must change; the
// Manager applies their result through three narrow interfaces at the OS
// boundary: Client (the WireGuard configuration protocol, satisfied by
// *wgctrl.Client), Links (rtnetlink: links, addresses, routes) and Resolver
// (DNS). Tests replace all three with fakes that check like the kernel does.
//
// The package does not log. Apply and Refresh return a Report of what they
// changed and found (an interface created, a peer updated and which of its
// settings, an endpoint name that moved or stopped resolving) for the caller
// to log; failures are in the error they return. Only the embedded
// wireguard-go devices log, from their own goroutines, to the logger given
// with WithDeviceLogger.
//
// Secrets never leave this package: private and preshared keys are read from
// files and handed to the WireGuard client only. They are never in a Report,
// never put in an error and never reported by Status.
package wg
