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
// Secrets never leave this package: private and preshared keys are read from
// files and handed to the WireGuard client only. They are never logged, never
// put in an error and never reported by Status.
package wg
