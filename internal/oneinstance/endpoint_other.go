//go:build !windows

package oneinstance

// EndpointFile is the instance's Unix socket (internal/localsock).
const EndpointFile = "desktop.sock"
