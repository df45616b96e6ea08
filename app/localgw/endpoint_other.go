//go:build !windows

package localgw

// AdminSocketFile (in the data directory) is the admin API's Unix socket.
const AdminSocketFile = "admin.sock"
