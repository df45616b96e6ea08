// Package systemd holds the systemd unit of the headless gateway
// (palyra-gateway.service) and its test, which builds palyra and has
// systemd-analyze verify the unit; it has no code of its own.
package systemd
